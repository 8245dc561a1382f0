"""The header block shared by SIP messages and message/sipfrag bodies: where it ends, how its
bytes decode, and how its lines become header fields (folding, names, offsets)."""

from __future__ import annotations

from .errors import SipParseError
from .grammar import is_token
from .names import header_key


class Header:
    """One header field: name as written (may be compact), unfolded value, byte offset, key."""

    __slots__ = ("name", "value", "offset", "key")

    def __init__(self, name: str, value: str, offset: int = 0, key: str | None = None) -> None:
        self.name = name
        self.value = value          # unfolded, surrounding whitespace stripped
        self.offset = offset        # byte offset of the header line in the original message
        self.key = key or header_key(name)   # lowercase full name: lookups use it

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Header):
            return NotImplemented
        return (self.name, self.value, self.offset) == (other.name, other.value, other.offset)

    def __repr__(self) -> str:
        return f"Header(name={self.name!r}, value={self.value!r}, offset={self.offset})"


def find_head_end(data: bytes, start: int = 0) -> tuple[int, int]:
    """(index where the last head line's text ends, index where the body starts).

    The head ends at the first empty line, whether lines end in CRLF or a bare LF; the
    first index excludes the last line's terminator. (-1, -1) when there is no empty line yet.
    """
    crlf = data.find(b"\n\r\n", start)
    lf = data.find(b"\n\n", start)
    if lf != -1 and (crlf == -1 or lf < crlf):
        end, body = lf, lf + 2
    elif crlf != -1:
        end, body = crlf, crlf + 3
    else:
        return -1, -1
    if end > start and data[end - 1] == 13:   # the CR of the last line's CRLF
        end -= 1
    return end, body


def decode_head(raw: bytes, base: int, defects: list[str]) -> str:
    """UTF-8 text of a header block; other bytes are kept as surrogate escapes and noted."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        defects.append(f"header bytes are not UTF-8 (first at byte {base + exc.start})")
        return raw.decode("utf-8", "surrogateescape")


BARE_LF = "lines end in a bare LF instead of CRLF"

# Names met in parsed messages that passed the token check -> key. Bounded against hostile input.
_FIELD_KEYS: dict[str, str] = {}
_FIELD_KEYS_MAX = 4096


class _NotSimple(Exception):
    """The fast path met something it leaves to the line-by-line parser."""


def parse_fields(head: str, base: int, defects: list[str] | None = None) -> tuple[str, list[Header]]:
    """Split a decoded header block into its first line and header fields.

    `base` is the byte offset of the block in the message, so each Header knows where its line
    starts. Continuation lines (leading SP/HTAB, RFC 3261 §7.3.1) are joined with one space.
    Lines ending in a bare LF are accepted and noted in `defects`.
    """
    # Fast path for the common case: ASCII, every line ending in CRLF, no folding.
    lines = head.split("\r\n")
    ends = len(lines) - 1
    if head.count("\n") == ends and head.count("\r") == ends and head.isascii():
        try:
            return lines[0], _crlf_fields(lines, base)
        except _NotSimple:
            pass
    return _parse_lines(head, base, defects)


def _crlf_fields(lines: list[str], base: int) -> list[Header]:
    off = base + len(lines[0]) + 2
    headers: list[Header] = []
    append = headers.append
    keys = _FIELD_KEYS
    for index in range(1, len(lines)):
        line = lines[index]
        name, colon, value = line.partition(":")
        key = keys.get(name)
        if key is None:
            if line[:1] in (" ", "\t"):
                raise _NotSimple
            name, key = _check_name(line, name, colon, off)
        append(Header(name, value.strip(" \t"), off, key))
        off += len(line) + 2
    return headers


def _check_name(line: str, name: str, colon: str, off: int) -> tuple[str, str]:
    """Validate a header name not met before (or written with spaces before the colon)."""
    if not colon:
        raise SipParseError(f"bad header line {line[:60]!r}: expected 'Name: value'", off)
    name = name.rstrip(" \t")
    if not is_token(name):
        raise SipParseError(f"bad header name {name[:60]!r}", off)
    key = header_key(name)
    if len(_FIELD_KEYS) < _FIELD_KEYS_MAX:
        _FIELD_KEYS[name] = key
    return name, key


def _parse_lines(head: str, base: int, defects: list[str] | None) -> tuple[str, list[Header]]:
    lines = head.split("\n")
    # The last line's terminator is not part of `head`: the caller judges that one.
    if defects is not None and any(not line.endswith("\r") for line in lines[:-1]):
        defects.append(BARE_LF)
    ascii_only = head.isascii()
    first = lines[0]
    off = base + (len(first) if ascii_only else _byte_len(first)) + 1
    if first.endswith("\r"):
        first = first[:-1]
    if "\r" in first:
        raise SipParseError("bare CR inside the start line", base + first.index("\r"))
    headers: list[Header] = []
    last: Header | None = None
    for index in range(1, len(lines)):
        raw = lines[index]
        line = raw[:-1] if raw.endswith("\r") else raw
        if "\r" in line:
            raise SipParseError("bare CR inside a header line", off)
        c = line[:1]
        if c == " " or c == "\t":
            if last is None:
                raise SipParseError("continuation line before any header", off)
            more = line.strip(" \t")
            if more:
                last.value = f"{last.value} {more}" if last.value else more
        else:
            name, colon, value = line.partition(":")
            key = _FIELD_KEYS.get(name)
            if key is None:
                name, key = _check_name(line, name, colon, off)
            last = Header(name, value.strip(" \t"), off, key)
            headers.append(last)
        off += (len(raw) if ascii_only else _byte_len(raw)) + 1
    return first, headers


def _byte_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))
