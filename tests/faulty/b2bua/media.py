"""Media: which SDP each user gets, and where the relay sends each user's RTP.

`relay` mode: every leg has a relay port pair on the PBX's host; the SDP a user gets names that
port, and RTP arriving there is sent on, from the bridged leg's relay port, to the address the
bridged user's SDP names, as far as the negotiated directions allow (a user the PBX offered
`sendonly`, i.e. put on hold, is not listened to). `reinvite` mode: no relay; a user gets the far
phone's own address.
"""

from __future__ import annotations

import itertools
from typing import Protocol

from .actions import Action, ReleaseMedia, RouteMedia
from .legs import Leg
from .sdp_rewrite import rewrite


class PortAllocator(Protocol):
    def allocate(self) -> int:
        """An even port whose pair (port, port+1) is reserved for a relay."""


class CountingPorts:
    """Relay ports without sockets (the core's unit tests): 40000, 40002, ..."""

    def __init__(self, first: int = 40000) -> None:
        self._next = itertools.count(first, 2)

    def allocate(self) -> int:
        return next(self._next)


class Media:
    def __init__(self, mode: str, host: str, ports: PortAllocator) -> None:
        if mode not in ("relay", "reinvite"):
            raise ValueError(f"media mode must be relay or reinvite, not {mode!r}")
        self.mode = mode
        self.host = host
        self.ports = ports

    @property
    def relay(self) -> bool:
        return self.mode == "relay"

    def open(self, leg: Leg) -> None:
        if self.relay and leg.relay_port is None:
            leg.relay_port = self.ports.allocate()

    def sdp_towards(self, leg: Leg, body: bytes, new_direction: str | None = None) -> bytes:
        """The SDP `leg`'s user gets for the far side's `body` (remembered as the leg's local SDP)."""
        if not body:
            return b""
        if self.relay:
            sdp = rewrite(body, leg.origin, address=self.host, port=leg.relay_port, new_direction=new_direction)
        else:
            sdp = rewrite(body, leg.origin, new_direction=new_direction)
        leg.local_sdp = sdp
        return sdp

    def routes(self, *legs: Leg | None) -> list[Action]:
        """The relay routes of these legs and of their peers, as they stand now."""
        if not self.relay:
            return []
        out: list[Action] = []
        seen: set[int] = set()
        for leg in legs:
            for one in (leg, leg.peer if leg else None):
                if one is None or one.relay_port is None or one.id in seen or one.ended:
                    continue
                seen.add(one.id)
                far = one.media_to or one.peer
                if (far is not None and far.relay_port is not None and far.remote_media is not None
                        and may_send(one) and may_receive(far)):
                    out.append(RouteMedia(one.relay_port, far.relay_port, far.remote_media))
                else:
                    out.append(RouteMedia(one.relay_port, None, None))
        return out

    def close(self, leg: Leg) -> list[Action]:
        if not self.relay or leg.relay_port is None or leg.keep_relay:
            return []
        port, leg.relay_port = leg.relay_port, None
        return [ReleaseMedia(port)]


def may_send(leg: Leg) -> bool:
    """The direction the PBX gave this user lets it send (PBX side recvonly or sendrecv)."""
    return leg.local_direction in ("sendrecv", "recvonly")


def may_receive(leg: Leg) -> bool:
    """The direction the PBX gave this user lets it receive (PBX side sendonly or sendrecv)."""
    return leg.local_direction in ("sendrecv", "sendonly")
