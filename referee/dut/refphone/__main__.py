"""`python -m referee.dut.refphone`: run the reference phone console."""

from .console import main

raise SystemExit(main())
