"""Typed views of the header values that matter for call transfer.

Each class has a `parse(value)` classmethod raising SipParseError and a `__str__` that renders
it; parsed objects keep the text they came from in `text` where they have one.
"""

from __future__ import annotations

import dataclasses
import datetime
import re

from .errors import SipParseError
from .grammar import Params, is_token, quote, quoted_string_end, unquote
from .uri import Uri, parse_uri, split_hostport

# An unquoted display name is tokens separated by LWS; UTF-8 beyond ASCII is tolerated.
_DISPLAY_WORD_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~\x80-\U0010ffff]+")
# callid = word [ "@" word ]: visible ASCII; a lone '@' split is not enforced.
_CALLID_RE = re.compile(r"[\x21-\x7e]+")


def check_call_id(call_id: str) -> str:
    """A Call-ID (header, Replaces, Target-Dialog): non-empty visible ASCII, no whitespace."""
    if _CALLID_RE.fullmatch(call_id) is None:
        raise SipParseError(f"bad Call-ID {call_id!r}: expected visible ASCII without spaces")
    return call_id


def _trailing_params(rest: str, value: str) -> Params:
    """Parameters after a name-addr or addr-spec: '' or ';p1;p2' (a lone ';' is an error)."""
    rest = rest.strip()
    if not rest:
        return Params()
    if rest[0] != ";":
        raise SipParseError(f"junk {rest[:20]!r} after the address in {value!r}")
    if not rest[1:].strip():
        raise SipParseError(f"empty parameter after the address in {value!r}")
    return Params.parse(rest[1:])


@dataclasses.dataclass(frozen=True, eq=False)
class NameAddr:
    """name-addr or addr-spec with header parameters (From, To, Contact, Refer-To, Referred-By, Route)."""

    uri: Uri
    display: str | None = None      # unquoted display name
    params: Params = dataclasses.field(default_factory=Params)
    bracketed: bool = True
    text: str = ""

    @classmethod
    def parse(cls, value: str) -> "NameAddr":
        v = value.strip()
        if not v:
            raise SipParseError("empty name-addr")
        if v == "*":
            raise SipParseError("'*' is not a name-addr")
        display: str | None = None
        if v[0] == '"':
            end = quoted_string_end(v, 0)
            display = unquote(v[:end])
            lt = len(v) - len(v[end:].lstrip())
            if lt >= len(v) or v[lt] != "<":
                raise SipParseError(f"quoted display name not followed by <URI> in {value!r}", end)
        else:
            lt = v.find("<")
            if lt > 0:
                display_text = v[:lt].strip()
                for word in display_text.split():
                    if _DISPLAY_WORD_RE.fullmatch(word) is None:
                        raise SipParseError(
                            f"display name {display_text!r} must be tokens or a quoted string")
                display = display_text or None
        if lt != -1:
            gt = v.find(">", lt)
            if gt == -1:
                raise SipParseError(f"missing '>' in {value!r}", lt)
            inner = v[lt + 1:gt]
            if not inner or inner[0] in " \t" or inner[-1] in " \t":
                raise SipParseError(f"spaces or nothing inside <...> in {value!r}", lt)
            uri = parse_uri(inner)
            params = _trailing_params(v[gt + 1:], value)
            return cls(uri=uri, display=display, params=params, bracketed=True, text=v)
        # addr-spec: the URI ends at the first ';' — those parameters belong to the header.
        uri_text, semi, param_text = v.partition(";")
        uri_text = uri_text.strip()
        if any(c in uri_text for c in " \t"):
            raise SipParseError(f"addr-spec with spaces (missing <...>?): {value!r}")
        if "?" in uri_text or "," in uri_text:
            raise SipParseError(f"a URI with '?' or ',' must be enclosed in <...>: {value!r}")
        params = _trailing_params(semi + param_text, value)
        return cls(uri=parse_uri(uri_text), display=None, params=params, bracketed=False, text=v)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        if self.text:
            return self.text
        display = f"{quote(self.display)} " if self.display else ""
        return f"{display}<{self.uri}>{self.params}"

    @classmethod
    def build(cls, uri: Uri | str, display: str | None = None, **params: str | None) -> "NameAddr":
        u = parse_uri(uri) if isinstance(uri, str) else uri
        return cls(uri=u, display=display, params=Params(list(params.items())))


_VIA_RE = re.compile(
    r"[ \t]*(?P<protocol>[^ \t/]+)[ \t]*/[ \t]*(?P<version>[^ \t/]+)[ \t]*/[ \t]*"
    r"(?P<transport>[^ \t/;]+)[ \t]+(?P<sent_by>[^;]+?)[ \t]*(?:;(?P<params>.*))?", re.S)


@dataclasses.dataclass(frozen=True, eq=False)
class Via:
    transport: str
    host: str
    port: int | None
    params: Params
    text: str = ""
    protocol: str = "SIP"
    version: str = "2.0"

    @classmethod
    def parse(cls, value: str) -> "Via":
        m = _VIA_RE.fullmatch(value)
        if m is None:
            raise SipParseError(f"bad Via {value!r}: expected 'SIP/2.0/<transport> host[:port]'")
        protocol, version, transport = m.group("protocol", "version", "transport")
        if not (is_token(protocol) and is_token(version) and is_token(transport)):
            raise SipParseError(f"bad sent-protocol in Via {value!r}")
        host, port = _parse_sent_by(m.group("sent_by"), value)
        param_text = m.group("params")
        if param_text is not None and not param_text.strip():
            raise SipParseError(f"empty parameter in Via {value!r}")
        params = Params.parse(param_text) if param_text else Params()
        return cls(transport=transport.upper(), host=host, port=port, params=params,
                   text=value.strip(), protocol=protocol, version=version)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The rport value filled in by the server, or None (also when present without value)."""
        value = self.params.get("rport")
        if value and value.isascii() and value.isdigit() and len(value) <= 5:
            return int(value)
        return None

    @property
    def has_rport(self) -> bool:
        return "rport" in self.params

    @property
    def sent_by(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def __str__(self) -> str:
        return self.text or f"SIP/2.0/{self.transport} {self.sent_by}{self.params}"

    @classmethod
    def build(cls, transport: str, host: str, port: int | None, **params: str | None) -> "Via":
        return cls(transport=transport.upper(), host=host, port=port,
                   params=Params(list(params.items())))


def _parse_sent_by(sent_by: str, value: str) -> tuple[str, int | None]:
    """sent-by = host [ COLON port ], with optional whitespace around the colon."""
    if sent_by.startswith("["):
        end = sent_by.find("]")
        if end == -1:
            raise SipParseError(f"bad IPv6 sent-by in Via {value!r}")
        hostport = sent_by[:end + 1] + "".join(sent_by[end + 1:].split())
    else:
        host, colon, port_text = sent_by.partition(":")
        hostport = host.strip() + (":" + port_text.strip() if colon else "")
    if any(c in hostport for c in " \t"):
        raise SipParseError(f"bad sent-by {sent_by!r} in Via {value!r}")
    return split_hostport(hostport, value)


# The usual `1 INVITE` (numbers of up to 10 digits: the caller checks they are below 2**31).
_CSEQ_RE = re.compile(r"([1-9][0-9]{0,9}|0) ([A-Za-z0-9\-.!%*_+`'~]+)")


@dataclasses.dataclass(frozen=True)
class CSeq:
    seq: int
    method: str

    @classmethod
    def parse(cls, value: str) -> "CSeq":
        m = _CSEQ_RE.fullmatch(value)
        if m is not None and int(m.group(1)) < 2 ** 31:
            return cls(int(m.group(1)), m.group(2))
        parts = value.split()
        if len(parts) != 2 or not (parts[0].isascii() and parts[0].isdigit()) or not is_token(parts[1]):
            raise SipParseError(f"bad CSeq {value!r}: expected '<number> <METHOD>'")
        if len(parts[0].lstrip("0")) > 10 or int(parts[0]) >= 2 ** 31:
            raise SipParseError(f"CSeq number {parts[0]} is not below 2**31")
        return cls(int(parts[0]), parts[1])

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


@dataclasses.dataclass(frozen=True)
class Event:
    """Event header (RFC 6665): package and the `id` parameter (RFC 3515 §2.4.6 / RFC 7647)."""

    package: str
    params: Params

    @classmethod
    def parse(cls, value: str) -> "Event":
        package, semi, param_text = value.strip().partition(";")
        package = package.strip()
        if not is_token(package):
            raise SipParseError(f"bad Event package {package!r}")
        return cls(package.lower(), _trailing_params(semi + param_text, value))

    @property
    def id(self) -> str | None:
        return self.params.get("id")

    def __str__(self) -> str:
        return f"{self.package}{self.params}"


@dataclasses.dataclass(frozen=True)
class SubscriptionState:
    state: str                 # active | pending | terminated (lowercase)
    params: Params

    @classmethod
    def parse(cls, value: str) -> "SubscriptionState":
        state, semi, param_text = value.strip().partition(";")
        state = state.strip()
        if not is_token(state):
            raise SipParseError(f"bad Subscription-State {value!r}")
        return cls(state.lower(), _trailing_params(semi + param_text, value))

    @property
    def reason(self) -> str | None:
        return self.params.get("reason")

    @property
    def expires(self) -> int | None:
        value = self.params.get("expires")
        return int(value) if value and value.isascii() and value.isdigit() and len(value) <= 10 else None

    @property
    def retry_after(self) -> int | None:
        value = self.params.get("retry-after")
        return int(value) if value and value.isascii() and value.isdigit() and len(value) <= 10 else None

    def __str__(self) -> str:
        return f"{self.state}{self.params}"


@dataclasses.dataclass(frozen=True)
class Replaces:
    """Replaces header (RFC 3891): identifies the dialog to replace."""

    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False
    params: Params = dataclasses.field(default_factory=Params)

    @classmethod
    def parse(cls, value: str) -> "Replaces":
        call_id, semi, param_text = value.strip().partition(";")
        call_id = call_id.strip()
        if not call_id:
            raise SipParseError(f"Replaces without a Call-ID: {value!r}")
        check_call_id(call_id)
        params = _trailing_params(semi + param_text, value)
        to_tag, from_tag = params.get("to-tag"), params.get("from-tag")
        if not to_tag or not from_tag:
            raise SipParseError(f"Replaces needs to-tag and from-tag: {value!r}")
        return cls(call_id, to_tag, from_tag, "early-only" in params, params)

    def __str__(self) -> str:
        out = f"{self.call_id};to-tag={self.to_tag};from-tag={self.from_tag}"
        return out + (";early-only" if self.early_only else "")


@dataclasses.dataclass(frozen=True)
class TargetDialog:
    """Target-Dialog header (RFC 4538): call-id with remote-tag and local-tag."""

    call_id: str
    remote_tag: str | None
    local_tag: str | None
    params: Params

    @classmethod
    def parse(cls, value: str) -> "TargetDialog":
        call_id, semi, param_text = value.strip().partition(";")
        if not call_id.strip():
            raise SipParseError(f"Target-Dialog without a Call-ID: {value!r}")
        check_call_id(call_id.strip())
        params = _trailing_params(semi + param_text, value)
        return cls(call_id.strip(), params.get("remote-tag"), params.get("local-tag"), params)

    def __str__(self) -> str:
        return f"{self.call_id}{self.params}"


@dataclasses.dataclass(frozen=True)
class ContentType:
    type: str          # lowercase
    subtype: str       # lowercase
    params: Params

    @classmethod
    def parse(cls, value: str) -> "ContentType":
        media, semi, param_text = value.strip().partition(";")
        t, slash, s = media.strip().partition("/")
        if not slash or not is_token(t.strip()) or not is_token(s.strip()):
            raise SipParseError(f"bad Content-Type {value!r}: expected type/subtype")
        return cls(t.strip().lower(), s.strip().lower(), _trailing_params(semi + param_text, value))

    @property
    def mime(self) -> str:
        return f"{self.type}/{self.subtype}"

    def __str__(self) -> str:
        return f"{self.mime}{self.params}"


def parse_refer_sub(value: str) -> bool:
    """Refer-Sub (RFC 4488): 'true' or 'false' (case-insensitive), optional parameters."""
    word, semi, rest = value.strip().partition(";")
    word = word.strip().lower()
    if word not in ("true", "false"):
        raise SipParseError(f"bad Refer-Sub {value!r}: expected true or false")
    _trailing_params(semi + rest, value)
    return word == "true"


def parse_delta(value: str, maximum: int = 2 ** 32 - 1) -> int:
    """A non-negative decimal (Content-Length, Expires, Max-Forwards ...) not above `maximum`
    (which is below 10**10)."""
    v = value.strip()
    if not (v.isascii() and v.isdigit()):
        raise SipParseError(f"not a non-negative integer: {value!r}")
    digits = v.lstrip("0") or "0"
    if len(digits) > 10 or int(digits) > maximum:   # length first: int() of a huge text is slow
        raise SipParseError(f"{v} is larger than {maximum}")
    return int(digits)


_DATE_RE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def parse_date(value: str) -> datetime.datetime:
    """Date header (RFC 3261 §20.17): RFC 1123 date, always GMT, returned in UTC."""
    m = _DATE_RE.fullmatch(value.strip())
    if m is None:
        raise SipParseError(f"bad Date {value!r}: expected e.g. 'Sat, 13 Nov 2010 23:29:00 GMT'")
    day, month, year, hh, mm, ss = m.group(2, 3, 4, 5, 6, 7)
    try:
        return datetime.datetime(int(year), _MONTHS.index(month) + 1, int(day), int(hh), int(mm),
                                 int(ss), tzinfo=datetime.timezone.utc)
    except ValueError as exc:
        raise SipParseError(f"bad Date {value!r}: {exc}") from None
