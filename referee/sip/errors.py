"""The one exception type the SIP message layer raises for bad input."""

from __future__ import annotations


class SipParseError(ValueError):
    """Malformed SIP: carries the byte offset in the input where the problem was found."""

    def __init__(self, reason: str, offset: int = 0) -> None:
        super().__init__(f"{reason} (at byte {offset})")
        self.reason = reason
        self.offset = offset
