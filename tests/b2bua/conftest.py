"""The B2BUA test PBX lives in tests/faulty/b2bua (imported as the package `b2bua`)."""

import pathlib
import sys

FAULTY = pathlib.Path(__file__).resolve().parents[1] / "faulty"
if str(FAULTY) not in sys.path:
    sys.path.insert(0, str(FAULTY))
