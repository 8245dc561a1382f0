"""SDP as the PBX passes it between legs: rewritten line by line, codecs kept as the phone wrote them.

The PBX is the SDP peer of every user: each leg gets the PBX's own o= line (its session id, a
version that grows whenever the body changes, RFC 3264 §8). In relay mode c= and the audio m=
port name the PBX's relay port of that leg; in reinvite mode they still name the far phone.
"""

from __future__ import annotations

import dataclasses
import secrets

from referee.sip import SipParseError
from referee.sip.sdp import DIRECTIONS, Sdp

MIRROR = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}


def parse_or_none(body: bytes) -> Sdp | None:
    if not body:
        return None
    try:
        return Sdp.parse(body)
    except SipParseError:
        return None


def media_address(body: bytes) -> tuple[str, int] | None:
    """Where the phone wants its audio: (c= address, audio m= port); None when on hold with
    0.0.0.0, port 0, or no audio stream."""
    sdp = parse_or_none(body)
    if sdp is None:
        return None
    audio = next((m for m in sdp.media if m.kind == "audio"), None)
    if audio is None or audio.port == 0:
        return None
    connection = sdp.connection_for(audio)
    if connection is None or connection.is_null:
        return None
    return connection.address, audio.port


def direction(body: bytes) -> str:
    """The audio direction the body states (sendrecv when absent, or when there is no SDP)."""
    sdp = parse_or_none(body)
    if sdp is None:
        return "sendrecv"
    if sdp.connection is not None and sdp.connection.is_null and sdp.direction == "sendrecv":
        return "inactive"       # RFC 2543 hold (c=0.0.0.0)
    return sdp.direction


@dataclasses.dataclass
class Origin:
    """The PBX's o= line towards one user: one session id, a version bumped on every change."""
    host: str
    session_id: int = dataclasses.field(default_factory=lambda: secrets.randbelow(10 ** 9) + 1)
    version: int = 0
    _last: bytes = b""

    def line(self, body_without_origin: bytes) -> str:
        if body_without_origin != self._last:
            self.version += 1
            self._last = body_without_origin
        addrtype = "IP6" if ":" in self.host else "IP4"
        return f"o=referee-b2bua {self.session_id} {self.version} IN {addrtype} {self.host}"


def rewrite(body: bytes, origin: Origin, address: str | None = None, port: int | None = None,
            new_direction: str | None = None) -> bytes:
    """`body` with the PBX's o= line; c= set to `address` and the audio port to `port` when given
    (other streams are then refused with port 0: only audio is relayed); the audio direction set
    to `new_direction` when given."""
    if new_direction is not None and new_direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}")
    text = body.decode("utf-8", "surrogateescape")
    lines = [line.rstrip("\r") for line in text.split("\n") if line.rstrip("\r")]
    out: list[str] = []
    in_audio = False
    audio_done = False
    for line in lines:
        kind, value = line[:1], line[2:]
        if kind == "m":
            in_audio = value.startswith("audio ") and not audio_done
            if in_audio:
                audio_done = True
                if port is not None:
                    fields = value.split(" ")
                    fields[1] = str(port)
                    line = "m=" + " ".join(fields)
            elif port is not None:
                fields = value.split(" ")
                fields[1] = "0"
                line = "m=" + " ".join(fields)
        elif kind == "c" and address is not None:
            addrtype = "IP6" if ":" in address else "IP4"
            line = f"c=IN {addrtype} {address}"
        elif kind == "a" and new_direction is not None and value in DIRECTIONS:
            continue            # written again below, once, on the audio stream
        out.append(line)
        if kind == "m" and in_audio and new_direction is not None:
            out.append(f"a={new_direction}")
    origin_index = next((i for i, line in enumerate(out) if line.startswith("o=")), None)
    rest = "\r\n".join(line for i, line in enumerate(out) if i != origin_index).encode("utf-8", "surrogateescape")
    o_line = origin.line(rest)
    if origin_index is None:
        out.insert(1, o_line)
    else:
        out[origin_index] = o_line
    return ("\r\n".join(out) + "\r\n").encode("utf-8", "surrogateescape")
