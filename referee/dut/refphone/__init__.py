"""The built-in reference phone DUT: pjsip (via pjsua2) behind a line console, and its driver.

`python -m referee.dut.refphone ...` runs the console (see console.py); `RefPhoneDriver`
launches and controls it. Importing this package does not import pjsua2.
"""

from .driver import RefPhoneDriver

__all__ = ["RefPhoneDriver"]
