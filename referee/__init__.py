"""referee: a SIP REFER (call transfer) conformance and interop test suite."""

__version__ = "0.1.0"
