"""Exceptions of the SIPp wrapper. Every message says what was expected and what was seen."""

from __future__ import annotations


class SippError(RuntimeError):
    """Base class: SIPp could not be run, or did not do what was asked."""


class SippNotFound(SippError):
    """The `sipp` binary is not installed (or not where we were told)."""


class SippTemplateError(SippError):
    """A scenario template is missing, malformed, or was given wrong parameters."""


class SippScenarioError(SippError):
    """SIPp refused the scenario; the message quotes SIPp's own words."""


class SippPortInUse(SippError):
    """SIPp could not bind one of its sockets because the port is taken."""


class SippStartError(SippError):
    """SIPp exited or stayed silent before it was ready to run calls."""


class SippTimeout(SippError):
    """A bounded wait ran out (SIPp was still running, or the screen never showed what we waited for)."""


class SippCallsFailed(SippError):
    """SIPp ran, but calls failed or did not complete (a peer that never answered, wrong messages...)."""
