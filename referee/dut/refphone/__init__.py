"""The built-in reference phone DUT: pjsip (via pjsua2) behind a line console, and its driver.

`python -m referee.dut.refphone ...` runs the console (see console.py); `RefPhoneDriver`
(driver.py) launches and controls it. Importing this package imports neither pjsua2 nor the
driver: the console starts with only what it needs.
"""

__all__ = ["RefPhoneDriver"]


def __getattr__(name: str):
    if name != "RefPhoneDriver":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .driver import RefPhoneDriver
    return RefPhoneDriver
