"""referee.dut — DUT profiles, launchers and drivers."""

from .driver import CAPABILITIES, DriverError, PhoneDriver, PhoneEvent
from .profile import BUILTIN_PROFILE, Profile, ProfileError, load_profile
from .session import DutSession

__all__ = ["CAPABILITIES", "DriverError", "PhoneDriver", "PhoneEvent", "BUILTIN_PROFILE", "Profile",
           "ProfileError", "load_profile", "DutSession"]
