"""Driver names used in profiles -> PhoneDriver classes (imported only when used)."""

from __future__ import annotations

import importlib

from .driver import DriverError, PhoneDriver

_DRIVERS = {
    "refphone": ("referee.dut.refphone.driver", "RefPhoneDriver"),
    "baresip": ("referee.dut.baresip", "BaresipDriver"),
    "linphone": ("referee.dut.linphone", "LinphoneDriver"),
    "twinkle": ("referee.dut.twinkle", "TwinkleDriver"),
    "console": ("referee.dut.console", "ConsoleDriver"),
    # upper testers: a person, an HTTP call-control API or a command performs the actions
    "operator": ("referee.dut.operator", "OperatorDriver"),
    "http": ("referee.dut.http_driver", "HttpDriver"),
    "command": ("referee.dut.command_driver", "CommandDriver"),
}


def driver_class(name: str) -> type[PhoneDriver]:
    try:
        module_name, class_name = _DRIVERS[name]
    except KeyError:
        raise DriverError(f"unknown driver {name!r} (known: {', '.join(sorted(_DRIVERS))})") from None
    return getattr(importlib.import_module(module_name), class_name)
