"""The line protocol spoken between the reference phone console and its driver.

Console -> driver, one line each:
  READY <host> <port>                     once, when the SIP transport listens
  CONTROL <host> <port>                   once, before READY, when the call-control HTTP API
                                          listens (only with --control-port)
  OK [key=value ...]                      a command succeeded (exactly one reply per command)
  ERR <reason>                            a command failed
  EVENT <kind> [key=value ...]            something happened, asynchronously

Values are shell-quoted (shlex) so they may hold spaces, quotes and '<>'; line breaks inside
values are folded to spaces so that one message is always one line. Anything else on the
stream (native library output) is not part of the protocol and is ignored by parsers.
"""

from __future__ import annotations

import dataclasses
import shlex


class ProtocolError(ValueError):
    """A protocol line could not be parsed."""


def _fold(value: object) -> str:
    return " ".join(str(value).splitlines())


def format_fields(fields: dict[str, object]) -> str:
    """`key=value` pairs, values quoted only when needed."""
    parts = []
    for key, value in fields.items():
        if not key or not key.replace("_", "").isalnum():
            raise ProtocolError(f"bad field name {key!r}: expected letters, digits and '_'")
        parts.append(f"{key}={shlex.quote(_fold(value))}")
    return " ".join(parts)


def format_event(kind: str, fields: dict[str, object]) -> str:
    text = format_fields(fields)
    return f"EVENT {kind} {text}".rstrip()


def format_ok(fields: dict[str, object] | None = None) -> str:
    return f"OK {format_fields(fields or {})}".rstrip()


def format_err(reason: str) -> str:
    return f"ERR {_fold(reason) or 'unknown error'}"


def parse_fields(text: str) -> dict[str, str]:
    """Inverse of format_fields. Raises ProtocolError naming the offending token."""
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise ProtocolError(f"unbalanced quoting in {text!r}: {exc}") from None
    fields: dict[str, str] = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep or not key:
            raise ProtocolError(f"expected key=value, got {token!r} in {text!r}")
        fields[key] = value
    return fields


@dataclasses.dataclass(frozen=True)
class Line:
    """One parsed protocol line. kind: 'ready', 'control', 'ok', 'err' or 'event'."""

    kind: str
    event: str = ""                      # event kind, for kind == 'event'
    fields: dict[str, str] = dataclasses.field(default_factory=dict)
    text: str = ""                       # error reason (err), raw line otherwise


def parse_line(raw: str) -> Line | None:
    """Parse one line of console output; None for lines outside the protocol."""
    line = raw.strip("\r\n")
    head, _, rest = line.partition(" ")
    if head in ("READY", "CONTROL"):
        parts = rest.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise ProtocolError(f"expected '{head} <host> <port>', got {line!r}")
        return Line(head.lower(), fields={"host": parts[0], "port": parts[1]}, text=line)
    if head == "OK":
        return Line("ok", fields=parse_fields(rest), text=line)
    if head == "ERR":
        return Line("err", text=rest)
    if head == "EVENT":
        kind, _, fields = rest.partition(" ")
        if not kind:
            raise ProtocolError(f"EVENT line without a kind: {line!r}")
        return Line("event", event=kind, fields=parse_fields(fields), text=line)
    return None
