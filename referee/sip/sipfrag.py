"""message/sipfrag bodies (RFC 3420), as carried by the NOTIFYs of a REFER (RFC 3515 §2.4.5).

A fragment is a start line (usually a status line such as `SIP/2.0 200 OK`), optional header
fields and an optional body after an empty line. Some stacks send the legacy `200 OK` without
the version: `strict=False` accepts it and records a defect.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from .errors import SipParseError
from .grammar import is_token
from .head import decode_head, find_head_end, parse_fields
from .names import default_reason, header_key
from .uri import parse_uri

SIP_VERSION = "SIP/2.0"


@dataclasses.dataclass
class Sipfrag:
    start_line: str
    status: int | None = None          # a status line: the code
    reason: str | None = None
    method: str | None = None          # a request line: method and Request-URI text
    uri: str | None = None
    version: str | None = None         # as written; None when missing (legacy `200 OK`)
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    body: bytes = b""
    defects: list[str] = dataclasses.field(default_factory=list)

    @property
    def is_response(self) -> bool:
        return self.status is not None

    @property
    def is_final(self) -> bool:
        """A final status (>= 200): the NOTIFY that carries it ends the REFER subscription."""
        return self.status is not None and self.status >= 200

    def header(self, name: str) -> str | None:
        """Value of the first header called `name` (any spelling or compact form), or None."""
        key = header_key(name)
        for n, v in self.headers:
            if header_key(n) == key:
                return v
        return None

    @classmethod
    def parse(cls, body: bytes, strict: bool = True) -> "Sipfrag":
        """Parse a sipfrag body; malformed input raises SipParseError (nothing else escapes)."""
        try:
            return _parse(body, strict)
        except SipParseError:
            raise
        except Exception as exc:   # defensive: a parser bug must still surface as a parse error
            raise SipParseError(f"unparsable sipfrag ({type(exc).__name__}: {exc})", 0) from None

    @staticmethod
    def build(status: int, reason: str | None = None,
              headers: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> bytes:
        """`SIP/2.0 <status> <reason>` CRLF, then `Name: value` CRLF for each header."""
        if not isinstance(status, int) or not 100 <= status <= 699:
            raise ValueError(f"status must be an int from 100 to 699, not {status!r}")
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        lines = [f"{SIP_VERSION} {status} {default_reason(status) if reason is None else reason}"]
        for name, value in pairs:
            if not is_token(name) or any(c in str(value) for c in "\r\n"):
                raise ValueError(f"bad sipfrag header {name!r}: {value!r}")
            lines.append(f"{name}: {value}")
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _parse(body: bytes, strict: bool) -> Sipfrag:
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise SipParseError(f"expected bytes, got {type(body).__name__}", 0)
    body = bytes(body)
    defects: list[str] = []
    lead = len(body) - len(body.lstrip(b"\r\n"))
    if lead == len(body) or not body.strip():
        raise SipParseError("empty message/sipfrag body", 0)
    if lead:
        defects.append("empty lines before the sipfrag start line")
    head_end, body_start = find_head_end(body, lead)
    if head_end == -1:
        raw, rest = body[lead:], b""
        if raw.endswith(b"\n"):
            raw = raw[:-1]
    else:
        raw, rest = body[lead:head_end], body[body_start:]
    start, fields = parse_fields(decode_head(raw, lead, defects), lead)
    frag = Sipfrag(start_line=start, headers=[(h.name, h.value) for h in fields], body=rest,
                   defects=defects)
    _parse_start(frag, start.strip(" \t"), strict, lead)
    return frag


def _parse_start(frag: Sipfrag, line: str, strict: bool, offset: int) -> None:
    parts = line.split()
    if not parts:
        raise SipParseError("empty sipfrag start line", offset)
    if " ".join(parts) != line:
        frag.defects.append("extra whitespace in the sipfrag start line")
    first = parts[0]
    if first[:4].upper() == "SIP/":
        _check_version(frag, first, strict, offset)
        if len(parts) < 2:
            raise SipParseError(f"sipfrag status line without a status code: {line!r}", offset)
        _set_status(frag, parts[1], " ".join(parts[2:]), line, offset)
        return
    if len(first) == 3 and first.isascii() and first.isdigit():
        # Legacy body `200 OK`: RFC 3420 requires the version.
        if strict:
            raise SipParseError(f"sipfrag status line without SIP/2.0: {line!r}", offset)
        frag.defects.append("sipfrag status line without SIP/2.0")
        _set_status(frag, first, " ".join(parts[1:]), line, offset)
        return
    if not is_token(first) or len(parts) not in (2, 3):
        raise SipParseError(f"bad sipfrag start line {line[:80]!r}", offset)
    frag.method, frag.uri = first, parts[1]
    parse_uri(parts[1], offset + len(first) + 1)
    if len(parts) == 3:
        _check_version(frag, parts[2], strict, offset)
    elif strict:
        raise SipParseError(f"sipfrag request line without SIP/2.0: {line!r}", offset)
    else:
        frag.defects.append("sipfrag request line without SIP/2.0")


def _check_version(frag: Sipfrag, version: str, strict: bool, offset: int) -> None:
    frag.version = version
    if version.upper() != SIP_VERSION:
        if strict:
            raise SipParseError(f"sipfrag version {version[:20]!r} is not SIP/2.0", offset)
        frag.defects.append(f"sipfrag version {version[:20]!r} is not SIP/2.0")


def _set_status(frag: Sipfrag, code: str, reason: str, line: str, offset: int) -> None:
    if len(code) != 3 or not (code.isascii() and code.isdigit()) or not 100 <= int(code) <= 699:
        raise SipParseError(f"bad status code {code[:20]!r} in sipfrag {line[:80]!r}", offset)
    frag.status = int(code)
    frag.reason = reason
