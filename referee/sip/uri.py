"""SIP, SIPS and TEL URIs (RFC 3261 §19.1, RFC 3966), keeping the text exactly as written.

`str(uri)` returns the original text of a parsed URI, so a test can compare what a DUT sent
byte for byte; typed access (user, host, port, params, the unescaped `?headers`) is computed
from it. A changed URI is a new object (`replace`), rendered in canonical form.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import urllib.parse

from .errors import SipParseError
from .grammar import Params

# Characters that may stand unescaped in a URI header value (RFC 3261 §25.1: hnv-unreserved
# and unreserved). Everything else — notably '@', ';', '=', '&', '?' — is %-escaped.
_HEADER_SAFE = "-_.!~*'()[]/?:+$"
_USER_SAFE = "-_.!~*'()&=+$,;?/"
_PARAM_SAFE = "-_.!~*'()[]/:&+$"

# Never legal anywhere in a URI: controls, space, non-ASCII and the delimiters of RFC 3986 §2.
_URI_BAD_RE = re.compile(r'[\x00-\x20"<>\\^`{|}\x7f-\U0010ffff]')
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
# user = 1*( unreserved / escaped / user-unreserved ); '#' is tolerated (common in the wild).
_USER_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/%#]+")
_PASSWORD_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,%]*")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-.]*")
_HNAME_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()\[\]/?:+$%]+")
# RFC 3966: a global number is '+' and digits; a local one may use hex digits, '*' and '#'
# and needs a phone-context. Visual separators '-' '.' '(' ')' may appear in both.
_TEL_GLOBAL_RE = re.compile(r"\+[0-9\-.()]*[0-9][0-9\-.()]*")
_TEL_LOCAL_RE = re.compile(r"[0-9A-Fa-f*#\-.()]*[0-9A-Fa-f*#][0-9A-Fa-f*#\-.()]*")
_HEX = frozenset("0123456789abcdefABCDEF")


def escape_header_value(text: str) -> str:
    """Escape a value for a URI `?name=value` header (e.g. Replaces inside Refer-To)."""
    return urllib.parse.quote(text, safe=_HEADER_SAFE, errors="surrogateescape")


def escape_user(text: str) -> str:
    return urllib.parse.quote(text, safe=_USER_SAFE, errors="surrogateescape")


def unescape(text: str) -> str:
    """Decode %HH escapes; malformed escapes raise SipParseError.

    Escaped octets that are not UTF-8 (legal in a URI) decode to surrogate escapes, so
    `escape_user`/`escape_header_value` give the same octets back.
    """
    i = text.find("%")
    if i == -1:
        return text
    while i != -1:
        pair = text[i + 1:i + 3]
        if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
            raise SipParseError(f"bad %-escape {text[i:i + 3]!r} in {text!r}", i)
        i = text.find("%", i + 3)
    return urllib.parse.unquote(text, errors="surrogateescape")


@dataclasses.dataclass(frozen=True, eq=False)
class Uri:
    """Any absolute URI we do not interpret further (e.g. http:, mailto:, urn:)."""

    scheme: str
    text: str

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Uri) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


@dataclasses.dataclass(frozen=True, eq=False)
class TelUri(Uri):
    """tel: URI (RFC 3966): the number and its parameters."""

    number: str = ""
    params: Params = dataclasses.field(default_factory=Params)


@dataclasses.dataclass(frozen=True, eq=False)
class SipUri(Uri):
    """sip: or sips: URI."""

    user: str | None = None          # unescaped
    password: str | None = None
    host: str = ""                   # IPv6 without brackets
    port: int | None = None
    params: Params = dataclasses.field(default_factory=Params)   # as written (escapes kept)
    headers: tuple[tuple[str, str], ...] = ()   # (name, unescaped value) in order

    @property
    def is_ipv6(self) -> bool:
        return ":" in self.host

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if self.is_ipv6 else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def transport(self) -> str | None:
        value = self.param("transport")
        return value.lower() if value else None

    def param(self, name: str) -> str | None:
        """Unescaped value of URI parameter `name`, matching escaped spellings too (`%6Cr`)."""
        key = name.lower()
        for n, v in self.params.items():
            if unescape(n).lower() == key:
                return unescape(v) if v is not None else None
        return None

    def has_param(self, name: str) -> bool:
        key = name.lower()
        return any(unescape(n).lower() == key for n, _ in self.params.items())

    def header(self, name: str) -> str | None:
        """Unescaped value of the URI header `name` (case-insensitive), e.g. 'Replaces'."""
        for n, v in self.headers:
            if n.lower() == name.lower():
                return v
        return None

    def replace(self, **changes) -> "SipUri":
        """A copy with fields changed (user, host, port, params, headers ...), rendered anew."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields.update(changes)
        fields["text"] = _render_sip(fields)
        if isinstance(fields["params"], dict):
            fields["params"] = Params(list(fields["params"].items()))
        return SipUri(**fields)

    def equivalent(self, other: "SipUri") -> bool:
        """URI comparison of RFC 3261 §19.1.4 (the parts that matter for matching peers)."""
        if not isinstance(other, SipUri) or self.scheme != other.scheme:
            return False
        if (self.user, self.password) != (other.user, other.password):
            return False
        if self.host.lower() != other.host.lower() or self.port != other.port:
            return False
        for name in ("user", "ttl", "method", "maddr", "transport"):
            a, b = self.param(name), other.param(name)
            if (a is not None or b is not None) and (a or "").lower() != (b or "").lower():
                return False
        return sorted((n.lower(), v) for n, v in self.headers) == sorted(
            (n.lower(), v) for n, v in other.headers)


def _render_sip(f: dict) -> str:
    params = f["params"]
    if isinstance(params, dict):
        params = Params(list(params.items()))
    out = f["scheme"] + ":"
    if f["user"] is not None:
        out += escape_user(f["user"])
        if f["password"] is not None:
            out += ":" + escape_user(f["password"])
        out += "@"
    host = f"[{f['host']}]" if ":" in f["host"] else f["host"]
    out += host
    if f["port"] is not None:
        out += f":{f['port']}"
    out += str(params)
    if f["headers"]:
        out += "?" + "&".join(f"{n}={escape_header_value(v)}" for n, v in f["headers"])
    return out


def make_sip_uri(host: str, port: int | None = None, user: str | None = None,
                 params: dict[str, str | None] | None = None,
                 headers: list[tuple[str, str]] | None = None, scheme: str = "sip") -> SipUri:
    fields = dict(scheme=scheme, user=user, password=None, host=host, port=port,
                  params=Params(list((params or {}).items())), headers=tuple(headers or ()))
    return SipUri(text=_render_sip(fields), **fields)


# The usual SIP URI in one match (user, password, host, port, parameters, headers); what it
# does not match goes through _parse_sip, which is the reference and names the problem.
_PCHARS = r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$%]+"
_SIP_FAST_RE = re.compile(
    r"(?:(?P<user>[A-Za-z0-9\-_.!~*'()&=+$,;?/%#]+)(?::(?P<password>[A-Za-z0-9\-_.!~*'()&=+$,%]*))?@)?"
    r"(?P<host>[A-Za-z0-9_][A-Za-z0-9_\-.]*|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?"
    rf"(?P<params>(?:;{_PCHARS}(?:={_PCHARS})?)*)(?:\?(?P<headers>.*))?", re.S)


def parse_uri(text: str, offset: int = 0) -> Uri:
    """Parse an absolute URI; SIP/SIPS and TEL get typed views. Raises SipParseError."""
    text = text.strip()
    scheme, colon, rest = text.partition(":")
    lower = scheme.lower()
    if not colon or (lower != "sip" and lower != "sips" and _SCHEME_RE.fullmatch(scheme) is None):
        raise SipParseError(f"not an absolute URI: {text!r}", offset)
    is_sip = lower == "sip" or lower == "sips"
    m = _SIP_FAST_RE.fullmatch(rest) if is_sip else None
    # The fast pattern lets no illegal character through but in the `?headers` part.
    if m is None or m.group("headers") is not None:
        bad = _URI_BAD_RE.search(rest)
        if bad is not None:
            raise SipParseError(f"illegal character {bad.group()!r} in URI {text!r}",
                                offset + len(scheme) + 1 + bad.start())
    if not rest:
        raise SipParseError(f"URI without anything after the scheme: {text!r}", offset)
    if is_sip:
        if m is not None:
            return _build_sip(lower, text, offset, *m.group(
                "user", "password", "host", "port", "params", "headers"))
        return _parse_sip(lower, rest, text, offset)
    if lower == "tel":
        number, semi, param_text = rest.partition(";")
        if semi and not param_text:
            raise SipParseError(f"empty tel URI parameter in {text!r}", offset)
        params = Params.parse(param_text, uri=True)
        if _TEL_GLOBAL_RE.fullmatch(number) is None and (
                _TEL_LOCAL_RE.fullmatch(number) is None or "phone-context" not in params):
            raise SipParseError(f"bad telephone number in {text!r} (a local number needs "
                                "a phone-context)", offset)
        return TelUri(scheme=lower, text=text, number=number, params=params)
    return Uri(scheme=lower, text=text)


def parses_as_plain_sip_uri(text: str) -> bool:
    """Whether parse_uri(text) is sure to give a SipUri without `?headers`, found without
    building it: the usual `sip:user@host:port;params`, without %-escapes or IPv6 references
    (building checks those). False only means that parse_uri has to decide."""
    scheme, _, rest = text.partition(":")
    if scheme != "sip" and scheme != "sips":
        return False
    m = _SIP_FAST_RE.fullmatch(rest)
    if m is None or m.group("headers") is not None or "%" in rest or "[" in rest:
        return False
    port = m.group("port")
    return port is None or 0 < int(port) < 65536


def _parse_sip(scheme: str, rest: str, text: str, offset: int) -> SipUri:
    # The userinfo ends at the first '@': '@' is legal neither in the user part nor in
    # parameters, while the user part may hold ';' and '?' (RFC 4475 §3.1.1.2 and §3.1.1.9).
    user = password = None
    at = rest.find("@")
    if at != -1:
        userinfo, rest = rest[:at], rest[at + 1:]
        user_raw, pcolon, password_raw = userinfo.partition(":")
        if _USER_RE.fullmatch(user_raw) is None:
            raise SipParseError(f"bad user part {user_raw!r} in {text!r}", offset)
        user = unescape(user_raw)
        if pcolon:
            if _PASSWORD_RE.fullmatch(password_raw) is None:
                raise SipParseError(f"bad password in {text!r}", offset)
            password = unescape(password_raw)
    body, qmark, header_text = rest.partition("?")
    hostport, semi, param_text = body.partition(";")
    host, port = split_hostport(hostport, text, offset)
    if semi and not param_text:
        raise SipParseError(f"empty URI parameter in {text!r}", offset)
    params = Params.parse(param_text, uri=True) if semi else Params()
    headers = _uri_headers(header_text, text, offset) if qmark else ()
    return _new_sip(scheme, text, user, password, host, port, params, headers)


def _build_sip(scheme: str, text: str, offset: int, user: str | None, password: str | None,
               host: str, port_text: str | None, param_text: str,
               header_text: str | None) -> SipUri:
    """A SipUri from the groups of _SIP_FAST_RE (already checked character by character)."""
    if user is not None:
        user = unescape(user)
        if password is not None:
            password = unescape(password)
    if host[0] == "[":
        host = check_host(host[1:-1], text, offset)
    port = None
    if port_text is not None:
        port = int(port_text)
        if not 0 < port < 65536:
            raise SipParseError(f"bad port {port_text!r} in {text!r}", offset)
    params = Params([(n, v if eq else None) for n, eq, v in
                     (p.partition("=") for p in param_text[1:].split(";"))]) if param_text else Params()
    headers = _uri_headers(header_text, text, offset) if header_text is not None else ()
    return _new_sip(scheme, text, user, password, host, port, params, headers)


def _uri_headers(header_text: str, text: str, offset: int) -> tuple[tuple[str, str], ...]:
    headers = []
    for item in header_text.split("&"):
        name, eq, value = item.partition("=")
        if not eq or _HNAME_RE.fullmatch(name) is None:
            raise SipParseError(f"bad URI header {item!r} in {text!r}", offset)
        headers.append((unescape(name), unescape(value)))
    return tuple(headers)


def _new_sip(scheme: str, text: str, user: str | None, password: str | None, host: str,
             port: int | None, params: Params, headers: tuple[tuple[str, str], ...]) -> SipUri:
    # Same object the dataclass __init__ makes, without its per-field frozen setattr cost.
    uri = object.__new__(SipUri)
    uri.__dict__.update(scheme=scheme, text=text, user=user, password=password, host=host,
                        port=port, params=params, headers=headers)
    return uri


def check_host(host: str, text: str, offset: int = 0) -> str:
    """Validate a host (hostname, IPv4, or IPv6 without brackets) and return it."""
    if ":" in host:
        if "%" in host:   # zone ids (fe80::1%eth0) have no place in SIP
            raise SipParseError(f"IPv6 zone id in {text!r}", offset)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise SipParseError(f"bad IPv6 address {host!r} in {text!r}", offset) from None
    elif _HOSTNAME_RE.fullmatch(host) is None:
        raise SipParseError(f"bad host {host!r} in {text!r}", offset)
    return host


def parse_port(port_text: str, text: str, offset: int = 0) -> int:
    if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5 \
            or not 0 < int(port_text) < 65536:
        raise SipParseError(f"bad port {port_text!r} in {text!r}", offset)
    return int(port_text)


def split_hostport(hostport: str, text: str, offset: int = 0) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]` or `[v6]:port` -> (host without brackets, port or None)."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end == -1:
            raise SipParseError(f"unterminated IPv6 reference in {text!r}", offset)
        host, after = hostport[1:end], hostport[end + 1:]
        if ":" not in host:
            raise SipParseError(f"bad IPv6 reference [{host}] in {text!r}", offset)
        if after and not after.startswith(":"):
            raise SipParseError(f"junk after IPv6 reference in {text!r}", offset)
        port_text = after[1:] if after else None
    else:
        host, colon, port_text = hostport.partition(":")
        if not colon:
            port_text = None
        if not host:
            raise SipParseError(f"bad host {host!r} in {text!r}", offset)
    check_host(host, text, offset)
    return host, (parse_port(port_text, text, offset) if port_text is not None else None)


# Kept for callers of the earlier name.
_split_hostport = split_hostport
