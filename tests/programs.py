"""Programs referee's own tests need, as ./install.sh installs them.

A test that needs one FAILS when it is missing (with the package to install), it is never
skipped: a machine without them is not a machine these tests can vouch for.

    from tests.programs import require_program
    sipp = require_program("sipp")                      # -> absolute path, or the test fails
"""

from __future__ import annotations

import pytest

from referee.dut.driver import ProgramMissing
from referee.dut.programs import find_program


def require_program(program: str, package: str | None = None) -> str:
    """Absolute path of `program` (PATH, then /usr/sbin ...); fails the test with the fix
    ("install it: apt-get install PACKAGE, or run ./install.sh") when it is not installed."""
    try:
        return find_program(program, package)
    except ProgramMissing as exc:
        pytest.fail(str(exc), pytrace=False)
