"""referee.dut — DUT profiles, launchers and drivers.

The names below are loaded on first use (PEP 562), so that programs that live in this package
and run as DUTs (the reference phone's console) start without the suite's modules.
"""

import importlib

_EXPORTS = {
    "CAPABILITIES": "driver", "ActionUnsupported": "driver", "DriverError": "driver", "NoEvidence": "driver",
    "PhoneDriver": "driver", "PhoneEvent": "driver", "ProgramMissing": "driver", "TransportUnsupported": "driver",
    "BUILTIN_PROFILE": "profile", "Profile": "profile", "ProfileError": "profile", "load_profile": "profile",
    "DutSession": "session",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value
