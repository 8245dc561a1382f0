"""The header block shared by SIP messages and message/sipfrag bodies: where it ends, how its
bytes decode, and how its lines become header fields (folding, names, offsets)."""

from __future__ import annotations

from collections.abc import Sequence

from .errors import SipParseError
from .grammar import is_token
from .names import CANONICAL, COMPACT_FORMS, header_key


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
    # A bare-LF empty line counts only before the CRLF one: no need to search the body for it.
    lf = data.find(b"\n\n", start, len(data) if crlf == -1 else crlf + 1)
    if lf != -1:
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

# A header line's text before its colon ("Via", "v", "X-Trace", "Via ") -> key, for names that
# passed the token check. Bounded against hostile input.
_FIELD_KEYS: dict[str, str] = {}
_FIELD_KEYS_MAX = 4096

for _name in list(CANONICAL.values()) + list(COMPACT_FORMS):
    for _spelling in (_name, _name.lower(), _name.upper()):
        _FIELD_KEYS[_spelling] = header_key(_spelling)


class HeadFields:
    """The header fields of one head, in order, with their lookup keys.

    A head in the common shape (ASCII, CRLF line ends, no folding) keeps its lines as they are
    and makes Header objects only when asked: parse() itself needs the keys and a few values.
    Other heads come already split into Header objects.
    """

    __slots__ = ("keys", "_lines", "_base", "_fields")

    def __init__(self, keys: Sequence[str], lines: Sequence[str] | None = None, base: int = 0,
                 fields: list[Header] | None = None) -> None:
        self.keys = keys            # one per field, in order
        self._lines = lines         # the head's lines; lines[0] is the start line
        self._base = base           # byte offset of the start line in the message
        self._fields = fields

    @classmethod
    def of_fields(cls, fields: list[Header]) -> "HeadFields":
        return cls([h.key for h in fields], fields=fields)

    def value(self, index: int) -> str:
        """The value of field `index`, surrounding whitespace stripped."""
        if self._fields is not None:
            return self._fields[index].value
        return self._lines[index + 1].partition(":")[2].strip(" \t")

    def offset(self, index: int) -> int:
        """The byte offset of the line of field `index` in the message."""
        if self._fields is not None:
            return self._fields[index].offset
        return self._base + sum(len(line) + 2 for line in self._lines[:index + 1])

    def headers(self) -> list[Header]:
        """New Header objects for every field (messages that share this object own theirs)."""
        if self._fields is not None:
            return [Header(h.name, h.value, h.offset, h.key) for h in self._fields]
        lines, keys = self._lines, self.keys
        off = self._base + len(lines[0]) + 2
        headers: list[Header] = []
        for index in range(1, len(lines)):
            line = lines[index]
            name, _, value = line.partition(":")
            headers.append(Header(name.rstrip(" \t"), value.strip(" \t"), off, keys[index - 1]))
            off += len(line) + 2
        return headers


def split_message_head(data: bytes, start: int, defects: list[str]) -> tuple[str, HeadFields, int]:
    """(start line, header fields, offset of the body) of the message head at data[start:].

    Raises SipParseError when the head has no end (no empty line) or a bad header name; notes
    a bare LF anywhere in the head in `defects`.
    """
    plain = _plain_head(data, start)
    if plain is not None:
        return plain
    head_end, body_start = find_head_end(data, start)
    if head_end == -1:
        raise SipParseError("no empty line after the headers (message truncated?)", len(data))
    head = decode_head(data[start:head_end], start, defects)
    first, fields = split_head(head, start, defects)
    if data[head_end:body_start] != b"\r\n\r\n" and BARE_LF not in defects:
        defects.append(BARE_LF)
    return first, fields, body_start


def _plain_head(data: bytes, start: int) -> tuple[str, HeadFields, int] | None:
    """The head in its common shape, found with one search: ASCII lines all ending in CRLF,
    not folded, up to the first CRLF CRLF (with no bare CR or LF in the head, no other empty
    line can come first). None for any other head."""
    end = data.find(b"\r\n\r\n", start)
    if end == -1:
        return None
    head = data[start:end].decode("latin-1")   # (never fails; only ASCII heads go on)
    lines = head.split("\r\n")
    fields = _plain_fields(head, lines, start)
    return None if fields is None else (lines[0], fields, end + 4)


def split_head(head: str, base: int, defects: list[str] | None = None) -> tuple[str, HeadFields]:
    """Split a decoded header block into its first line and its header fields.

    `base` is the byte offset of the block in the message, so each field knows where its line
    starts. Continuation lines (leading SP/HTAB, RFC 3261 §7.3.1) are joined with one space.
    Lines ending in a bare LF are accepted and noted in `defects`. Bad names raise SipParseError.
    """
    lines = head.split("\r\n")
    fields = _plain_fields(head, lines, base)
    if fields is not None:
        return lines[0], fields
    first, fields = _parse_lines(head, base, defects)
    return first, HeadFields.of_fields(fields)


def _plain_fields(head: str, lines: list[str], base: int) -> HeadFields | None:
    """The fields of a head in the common shape: ASCII, every line ending in CRLF (no bare CR
    or LF anywhere), no folding. None for any other head; bad names raise SipParseError."""
    ends = len(lines) - 1
    if not (head.isascii() and head.count("\n") == ends and head.count("\r") == ends):
        return None
    # (A line without a colon is left out, so the keys come out short.)
    keys = [_FIELD_KEYS.get(line.partition(":")[0]) for line in lines[1:] if ":" in line]
    if None in keys or len(keys) < ends:
        keys = _check_new_names(lines, base)
        if keys is None:
            return None
    # (Tuples of strings drop out of the garbage collector's sight: a trace of many messages
    # is walked by it again and again.)
    return HeadFields(tuple(keys), tuple(lines), base)


def parse_fields(head: str, base: int, defects: list[str] | None = None) -> tuple[str, list[Header]]:
    """Like split_head, with the fields as Header objects."""
    first, fields = split_head(head, base, defects)
    return first, fields.headers()


def _check_new_names(lines: list[str], base: int) -> list[str] | None:
    """The keys of the header lines, checking the names not met before; None when a line is
    folded (left to _parse_lines)."""
    keys = []
    off = base + len(lines[0]) + 2
    for index in range(1, len(lines)):
        line = lines[index]
        name, colon, _ = line.partition(":")
        key = _FIELD_KEYS.get(name) if colon else None
        if key is None:
            if line[:1] in (" ", "\t"):
                return None
            key = _check_name(line, name, colon, off)[1]
        keys.append(key)
        off += len(line) + 2
    return keys


def _check_name(line: str, name: str, colon: str, off: int) -> tuple[str, str]:
    """Validate a header name not met before (or written with spaces before the colon)."""
    if not colon:
        raise SipParseError(f"bad header line {line[:60]!r}: expected 'Name: value'", off)
    written = name
    name = name.rstrip(" \t")
    if not is_token(name):
        raise SipParseError(f"bad header name {name[:60]!r}", off)
    key = header_key(name)
    if len(_FIELD_KEYS) < _FIELD_KEYS_MAX:
        _FIELD_KEYS[written] = key
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
            key = _FIELD_KEYS.get(name) if colon else None
            if key is None:
                name, key = _check_name(line, name, colon, off)
            else:
                name = name.rstrip(" \t")
            last = Header(name, value.strip(" \t"), off, key)
            headers.append(last)
        off += (len(raw) if ascii_only else _byte_len(raw)) + 1
    return first, headers


def _byte_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))
