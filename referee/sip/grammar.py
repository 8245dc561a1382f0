"""Small lexical helpers shared by the header parsers: list splitting, parameters, quoting."""

from __future__ import annotations

import re

from .errors import SipParseError

TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)

_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# gen-value of RFC 3261 §25.1: token / host (which adds ':' '[' ']' for IPv6) / quoted-string.
_GEN_VALUE_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~:\[\]]+")
# A complete quoted-string: backslash escapes any character, no bare '"' inside.
_QUOTED_RE = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
# URI parameter names and values (paramchar: unreserved, param-unreserved, escaped).
_URI_PARAM_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$%]+")


def is_token(text: str) -> bool:
    return _TOKEN_RE.fullmatch(text) is not None


def is_quoted_string(text: str) -> bool:
    return _QUOTED_RE.fullmatch(text) is not None


def split_outside(text: str, sep: str) -> list[str]:
    """Split on `sep` where it is not inside a quoted string or <...> brackets."""
    if '"' not in text and "<" not in text:
        return text.split(sep)
    parts: list[str] = []
    depth = 0
    quoted = False
    escaped = False
    start = 0
    for i, c in enumerate(text):
        if quoted:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "<":
            depth += 1
        elif c == ">" and depth:
            depth -= 1
        elif c == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def split_list(value: str) -> list[str]:
    """Comma-separated header values, ignoring commas in quotes and <...>; empty items dropped."""
    return [p.strip() for p in split_outside(value, ",") if p.strip()]


def split_list_strict(value: str) -> list[str]:
    """Comma-separated values for a typed view: an empty element is an error (RFC 3261 §7.3.1)."""
    items = [p.strip() for p in split_outside(value, ",")]
    if any(not p for p in items):
        raise SipParseError(f"empty element in comma-separated list {value!r}")
    return items


class Params:
    """Ordered `;name=value` parameters with case-insensitive names; keeps the text as written.

    A parameter without `=` has the value None (e.g. `;lr`, `;rport`).
    """

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str | None]] | None = None) -> None:
        self._items: list[tuple[str, str | None]] = list(items or [])

    @classmethod
    def parse(cls, text: str, uri: bool = False) -> "Params":
        """Parse `a=1;b;c="x;y"` (no leading ';'); whitespace around names, '=' and values is LWS.

        `uri=True` checks names and values against the URI parameter alphabet (escapes kept
        as written); otherwise they must be tokens and values token, host or quoted-string.
        Empty parameters (`a;;b`) and `name=` without a value raise SipParseError.
        """
        if not text or text.isspace():
            return cls()
        name_re = _URI_PARAM_RE if uri else _TOKEN_RE
        value_re = _URI_PARAM_RE if uri else _GEN_VALUE_RE
        items: list[tuple[str, str | None]] = []
        for piece in (text.split(";") if uri else split_outside(text, ";")):
            name, eq, value = piece.partition("=")
            name = name.strip()
            if not name:
                raise SipParseError(f"empty parameter in {text!r}")
            if name_re.fullmatch(name) is None:
                raise SipParseError(f"bad parameter name {name!r} in {text!r}")
            if not eq:
                items.append((name, None))
                continue
            value = value.strip()
            if not value:
                raise SipParseError(f"parameter {name!r} has '=' but no value in {text!r}")
            if value_re.fullmatch(value) is None and (uri or _QUOTED_RE.fullmatch(value) is None):
                raise SipParseError(f"bad value {value!r} of parameter {name!r}")
            items.append((name, value))
        return cls(items)

    def get(self, name: str, default: str | None = None) -> str | None:
        key = name.lower()
        for n, v in self._items:
            if n.lower() == key:
                return v
        return default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(n.lower() == name.lower() for n, _ in self._items)

    def __getitem__(self, name: str) -> str | None:
        if name not in self:
            raise KeyError(name)
        return self.get(name)

    def set(self, name: str, value: str | None) -> None:
        for i, (n, _) in enumerate(self._items):
            if n.lower() == name.lower():
                self._items[i] = (n, value)
                return
        self._items.append((name, value))

    def remove(self, name: str) -> None:
        self._items = [(n, v) for n, v in self._items if n.lower() != name.lower()]

    def items(self) -> list[tuple[str, str | None]]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Params):
            return NotImplemented
        mine = {(n.lower(), v) for n, v in self._items}
        return mine == {(n.lower(), v) for n, v in other._items}

    def __str__(self) -> str:
        return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in self._items)

    def __repr__(self) -> str:
        return f"Params({self._items!r})"


def unquote(text: str) -> str:
    """Remove surrounding double quotes and backslash escapes of a quoted-string."""
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        out = []
        escaped = False
        for c in text[1:-1]:
            if escaped:
                out.append(c)
                escaped = False
            elif c == "\\":
                escaped = True
            else:
                out.append(c)
        return "".join(out)
    return text


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quoted_string_end(text: str, start: int) -> int:
    """Index just after the quoted-string opening at text[start] ('"'); raises if unterminated."""
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i + 1
        i += 1
    raise SipParseError(f"unterminated quoted string in {text!r}", start)
