"""What the sans-I/O core asks its I/O shell to do. The shell carries them out in order."""

from __future__ import annotations

import dataclasses

from referee.sip import Request, Response

Address = tuple[str, int]


@dataclasses.dataclass
class SendSip:
    """Put this message on the wire to `dest` over `transport` ('udp' or 'tcp')."""
    message: Request | Response
    dest: Address
    transport: str


@dataclasses.dataclass
class RouteMedia:
    """RTP arriving at relay port `port` (RTCP at port+1) leaves from relay port `out_port`
    (RTCP: out_port+1) towards `dest` (RTCP: dest port+1); `dest` None: drop it."""
    port: int
    out_port: int | None
    dest: Address | None


@dataclasses.dataclass
class ReleaseMedia:
    """The relay port pair `port`, `port`+1 is no longer used: close it."""
    port: int


@dataclasses.dataclass
class Log:
    """One line for the PBX's log (stdout)."""
    text: str


Action = SendSip | RouteMedia | ReleaseMedia | Log
