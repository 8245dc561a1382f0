"""Minimal SDP (RFC 4566) for call-transfer tests: parse what matters, build offers and answers.

Parsed: version, origin, session name, connection (session and media level), times,
bandwidths, attributes as (name, value|None) in order, and each m= line with its own
attributes. The builders make a G.711 + telephone-event audio offer and an RFC 3264 answer.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import time

from .errors import SipParseError

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_MIRROR = {"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly",
           "inactive": "inactive"}
# Static RTP/AVP payload types we can name (RFC 3551 table 4).
STATIC_PAYLOADS = {0: "PCMU/8000", 3: "GSM/8000", 4: "G723/8000", 8: "PCMA/8000",
                   9: "G722/8000", 18: "G729/8000"}
# What an answer built here accepts (encoding names are case-insensitive).
_ANSWERABLE = ("pcmu/8000", "pcma/8000", "telephone-event/8000")
_NTP_OFFSET = 2208988800   # seconds from 1900 to 1970: o= ids are NTP-based (RFC 4566 §5.2)
_MAX_NUMBER_DIGITS = 40


@dataclasses.dataclass
class Origin:
    username: str
    session_id: int
    version: int
    nettype: str
    addrtype: str
    address: str


@dataclasses.dataclass
class Connection:
    nettype: str
    addrtype: str
    address: str
    ttl: int | None = None        # multicast IPv4 only
    count: int | None = None      # number of multicast addresses

    @property
    def is_null(self) -> bool:
        """0.0.0.0 (or ::): the RFC 2543 way of putting a call on hold."""
        return self.address in ("0.0.0.0", "::")


@dataclasses.dataclass
class Media:
    kind: str                      # audio, video, application ...
    port: int
    proto: str                     # RTP/AVP ...
    formats: list[str]
    attributes: list[tuple[str, str | None]] = dataclasses.field(default_factory=list)
    connection: Connection | None = None
    port_count: int = 1
    bandwidths: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    session_direction: str | None = None   # the session-level direction attribute, if any

    @property
    def direction(self) -> str:
        """sendrecv/sendonly/recvonly/inactive: media level, else session level, else sendrecv."""
        own = [name for name, _ in self.attributes if name in DIRECTIONS]
        return own[-1] if own else (self.session_direction or "sendrecv")

    def attribute(self, name: str) -> str | None:
        """Value of the first `a=name[:value]` (None also when present without value)."""
        return next((v for n, v in self.attributes if n == name), None)

    def has_attribute(self, name: str) -> bool:
        return any(n == name for n, _ in self.attributes)

    @property
    def rtpmap(self) -> dict[str, str]:
        """Payload type -> `encoding/rate[/channels]` from a=rtpmap lines."""
        return _per_format(self.attributes, "rtpmap")

    @property
    def fmtp(self) -> dict[str, str]:
        return _per_format(self.attributes, "fmtp")

    def encoding(self, fmt: str) -> str | None:
        """Encoding of a payload type: its rtpmap, or the static name (0 -> PCMU/8000)."""
        mapped = self.rtpmap.get(fmt)
        if mapped is None and fmt.isdigit() and len(fmt) < 4:
            return STATIC_PAYLOADS.get(int(fmt))
        return mapped


def _per_format(attributes: list[tuple[str, str | None]], name: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, v in attributes:
        if n == name and v:
            fmt, _, rest = v.partition(" ")
            out.setdefault(fmt, rest.strip())
    return out


@dataclasses.dataclass
class Sdp:
    version: int
    origin: Origin
    session_name: str
    connection: Connection | None = None
    media: list[Media] = dataclasses.field(default_factory=list)
    attributes: list[tuple[str, str | None]] = dataclasses.field(default_factory=list)
    times: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    bandwidths: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    defects: list[str] = dataclasses.field(default_factory=list)

    @property
    def direction(self) -> str:
        """Direction of the first audio stream (else the first stream, else the session)."""
        audio = [m for m in self.media if m.kind == "audio"] or self.media
        if audio:
            return audio[0].direction
        own = [name for name, _ in self.attributes if name in DIRECTIONS]
        return own[-1] if own else "sendrecv"

    def attribute(self, name: str) -> str | None:
        return next((v for n, v in self.attributes if n == name), None)

    def connection_for(self, media: Media) -> Connection | None:
        """The connection that applies to `media`: its own c= line, else the session's."""
        return media.connection or self.connection

    @classmethod
    def parse(cls, body: bytes) -> "Sdp":
        """Parse an SDP body; malformed input raises SipParseError (nothing else escapes)."""
        try:
            return _Parser(body).run()
        except SipParseError:
            raise
        except Exception as exc:   # defensive: a parser bug must still surface as a parse error
            raise SipParseError(f"unparsable SDP ({type(exc).__name__}: {exc})", 0) from None

    @staticmethod
    def offer(address: str, port: int, session_id: int | None = None, version: int = 1,
              formats: tuple[int, ...] | list[int] = (0, 8, 101),
              direction: str = "sendrecv") -> bytes:
        """An audio offer: G.711 and friends by static payload type, any dynamic payload
        type (96-127) as telephone-event/8000 with `fmtp 0-16` (RFC 4733)."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
        address, addrtype = _address(address)
        _check_port(port)
        lines = _session_lines(address, addrtype, session_id, version)
        lines.append(f"m=audio {port} RTP/AVP {' '.join(str(f) for f in formats)}")
        for fmt in formats:
            if not isinstance(fmt, int):
                raise ValueError(f"payload types are ints, not {fmt!r}")
            if fmt in STATIC_PAYLOADS:
                lines.append(f"a=rtpmap:{fmt} {STATIC_PAYLOADS[fmt]}")
            elif 96 <= fmt <= 127:
                lines += [f"a=rtpmap:{fmt} telephone-event/8000", f"a=fmtp:{fmt} 0-16"]
            else:
                raise ValueError(f"payload type {fmt} is neither a known static one nor dynamic")
        lines.append(f"a={direction}")
        return ("\r\n".join(lines) + "\r\n").encode("ascii")

    @staticmethod
    def answer(offer: "Sdp | bytes", address: str, port: int,
               direction: str | None = None) -> bytes:
        """An RFC 3264 answer: one m= line per offered one, in order. The first RTP/AVP audio
        stream with PCMU or PCMA is accepted (with telephone-event if offered, keeping the
        offer's payload numbers); every other stream is refused with port 0. The direction
        mirrors the offered one (sendonly -> recvonly ...) unless given."""
        if isinstance(offer, (bytes, bytearray, memoryview)):
            offer = Sdp.parse(bytes(offer))
        if direction is not None and direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
        address, addrtype = _address(address)
        _check_port(port)
        lines = _session_lines(address, addrtype, None, 1)
        accepted = False
        for media in offer.media:
            chosen = [] if accepted else _answerable(media)
            if not chosen:
                lines.append(f"m={media.kind} 0 {media.proto} {' '.join(media.formats)}")
                continue
            accepted = True
            lines.append(f"m=audio {port} RTP/AVP {' '.join(chosen)}")
            fmtp = media.fmtp
            for fmt in chosen:
                encoding = media.encoding(fmt) or ""
                lines.append(f"a=rtpmap:{fmt} {encoding}")
                if encoding.lower().startswith("telephone-event"):
                    lines.append(f"a=fmtp:{fmt} {fmtp.get(fmt, '0-16')}")
            lines.append(f"a={direction or _MIRROR[media.direction]}")
        return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _answerable(media: Media) -> list[str]:
    if media.kind != "audio" or media.proto.upper() != "RTP/AVP" or media.port == 0:
        return []
    chosen = [f for f in media.formats if (media.encoding(f) or "").lower() in _ANSWERABLE]
    if not any((media.encoding(f) or "").lower() in _ANSWERABLE[:2] for f in chosen):
        return []   # telephone-event alone carries no audio
    return chosen


def _address(address: str) -> tuple[str, str]:
    text = address[1:-1] if address.startswith("[") and address.endswith("]") else address
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"SDP address must be an IPv4 or IPv6 address, not {address!r}") from None
    return str(ip), ("IP6" if ip.version == 6 else "IP4")


def _check_port(port: int) -> None:
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an int from 0 to 65535, not {port!r}")


def _session_lines(address: str, addrtype: str, session_id: int | None, version: int) -> list[str]:
    sid = int(time.time()) + _NTP_OFFSET if session_id is None else session_id
    return ["v=0", f"o=referee {sid} {version} IN {addrtype} {address}", "s=referee",
            f"c=IN {addrtype} {address}", "t=0 0"]


class _Parser:
    """One pass over the `x=value` lines; session level until the first m= line."""

    def __init__(self, body: bytes) -> None:
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise SipParseError(f"expected bytes, got {type(body).__name__}", 0)
        self.data = bytes(body)
        self.defects: list[str] = []
        self.offset = 0

    def fail(self, reason: str) -> SipParseError:
        return SipParseError(f"SDP: {reason}", self.offset)

    def run(self) -> Sdp:
        try:
            text = self.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.defects.append(f"SDP bytes are not UTF-8 (first at byte {exc.start})")
            text = self.data.decode("utf-8", "surrogateescape")
        lines = text.split("\n")
        while lines and lines[-1] in ("", "\r"):
            lines.pop()
        if not lines:
            raise self.fail("empty body")
        seen: set[str] = set()
        version = origin = name = None
        session_connection: Connection | None = None
        attributes: list[tuple[str, str | None]] = []
        times: list[tuple[int, int]] = []
        bandwidths: list[tuple[str, int]] = []
        media: list[Media] = []
        for index, raw in enumerate(lines):
            line = raw[:-1] if raw.endswith("\r") else raw
            if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
                raise self.fail(f"bad line {line[:40]!r}: expected '<letter>=<value>'")
            kind, value = line[0], line[2:]
            if index == 0 and kind != "v":
                raise self.fail("the first line must be v=")
            current = media[-1] if media else None
            if kind == "m":
                media.append(self._media(value))
            elif kind == "a":
                (current.attributes if current else attributes).append(self._attribute(value))
            elif kind == "c":
                conn = self._connection(value)
                if current is None:
                    if session_connection is not None:
                        raise self.fail("two session-level c= lines")
                    session_connection = conn
                elif current.connection is not None:
                    raise self.fail("two c= lines in one media description")
                else:
                    current.connection = conn
            elif kind == "b":
                (current.bandwidths if current else bandwidths).append(self._bandwidth(value))
            elif kind not in "vosiuepcbtrzkam":
                self.defects.append(f"unknown SDP line type {kind}=")
            elif current is not None and kind not in "ik":
                raise self.fail(f"{kind}= line inside a media description")
            elif kind in "vos":
                if kind in seen:
                    raise self.fail(f"more than one {kind}= line")
                seen.add(kind)
                if kind == "v":
                    if value != "0":
                        raise self.fail(f"unsupported SDP version {value[:10]!r}")
                    version = 0
                elif kind == "o":
                    origin = self._origin(value)
                else:
                    if not value:
                        raise self.fail("empty s= line")
                    name = value
            elif kind == "t":
                times.append(self._times(value))
            self.offset += len(raw.encode("utf-8", "surrogateescape")) + 1
        if version is None or origin is None or name is None:
            missing = [k for k, v in (("v", version), ("o", origin), ("s", name)) if v is None]
            raise self.fail(f"missing {', '.join(k + '=' for k in missing)}")
        if not times:
            self.defects.append("no t= line")
        session_direction = next((n for n, _ in reversed(attributes) if n in DIRECTIONS), None)
        for m in media:
            m.session_direction = session_direction
            if m.connection is None and session_connection is None and m.port != 0:
                self.defects.append(f"no c= line for the {m.kind} stream")
        return Sdp(version=version, origin=origin, session_name=name, connection=session_connection,
                   media=media, attributes=attributes, times=times, bandwidths=bandwidths,
                   defects=self.defects)

    def _number(self, text: str, what: str, maximum: int | None = None) -> int:
        if not (text.isascii() and text.isdigit()) or len(text) > _MAX_NUMBER_DIGITS:
            raise self.fail(f"bad {what} {text[:20]!r}")
        number = int(text)
        if maximum is not None and number > maximum:
            raise self.fail(f"{what} {number} is above {maximum}")
        return number

    def _origin(self, value: str) -> Origin:
        fields = value.split(" ")
        if len(fields) != 6 or not all(fields):
            raise self.fail(f"bad o= line {value[:60]!r}: expected 6 fields")
        return Origin(fields[0], self._number(fields[1], "o= session id"),
                      self._number(fields[2], "o= session version"), fields[3], fields[4], fields[5])

    def _connection(self, value: str) -> Connection:
        fields = value.split(" ")
        if len(fields) != 3 or not all(fields):
            raise self.fail(f"bad c= line {value[:60]!r}: expected '<net> <addrtype> <address>'")
        address, *extra = fields[2].split("/")
        if not address or len(extra) > 2:
            raise self.fail(f"bad connection address {fields[2][:60]!r}")
        numbers = [self._number(x, "c= ttl/count") for x in extra]
        ttl = count = None
        if fields[1].upper() == "IP6" and numbers:
            if len(numbers) > 1:
                raise self.fail(f"bad IP6 connection address {fields[2][:60]!r}")
            count = numbers[0]
        elif numbers:
            ttl = numbers[0]
            count = numbers[1] if len(numbers) > 1 else None
        return Connection(fields[0], fields[1], address, ttl, count)

    def _media(self, value: str) -> Media:
        fields = value.split(" ")
        if len(fields) < 4 or not all(fields):
            raise self.fail(f"bad m= line {value[:60]!r}: expected '<media> <port> <proto> <fmt> ...'")
        port_text, slash, count_text = fields[1].partition("/")
        port = self._number(port_text, "m= port", 65535)
        count = self._number(count_text, "m= port count") if slash else 1
        return Media(kind=fields[0], port=port, proto=fields[2], formats=fields[3:],
                     port_count=count)

    def _attribute(self, value: str) -> tuple[str, str | None]:
        name, colon, rest = value.partition(":")
        if not name or any(c in name for c in " \t"):
            raise self.fail(f"bad attribute {value[:40]!r}")
        return name, (rest if colon else None)

    def _bandwidth(self, value: str) -> tuple[str, int]:
        kind, colon, amount = value.partition(":")
        if not colon or not kind:
            raise self.fail(f"bad b= line {value[:40]!r}")
        return kind, self._number(amount, "bandwidth")

    def _times(self, value: str) -> tuple[int, int]:
        fields = value.split(" ")
        if len(fields) != 2:
            raise self.fail(f"bad t= line {value[:40]!r}")
        return self._number(fields[0], "start time"), self._number(fields[1], "stop time")
