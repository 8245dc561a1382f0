"""referee.dut — DUT profiles, launchers and drivers."""

from .driver import (CAPABILITIES, ActionUnsupported, DriverError, NoEvidence, PhoneDriver, PhoneEvent,
                     ProgramMissing, TransportUnsupported)
from .profile import BUILTIN_PROFILE, Profile, ProfileError, load_profile
from .session import DutSession

__all__ = ["CAPABILITIES", "ActionUnsupported", "DriverError", "NoEvidence", "ProgramMissing",
           "TransportUnsupported", "PhoneDriver", "PhoneEvent", "BUILTIN_PROFILE", "Profile",
           "ProfileError", "load_profile", "DutSession"]
