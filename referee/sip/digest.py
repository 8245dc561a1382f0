"""Digest authentication for SIP (RFC 3261 §22.4, RFC 2617, RFC 7616, RFC 8760).

Client side: `Challenge.parse` a WWW-Authenticate / Proxy-Authenticate value, then
`authorization(...)` gives the Authorization / Proxy-Authorization value. Server side:
`make_challenge(...)`, then `Credentials.parse` and `verify(...)`. Algorithms MD5, SHA-256
and SHA-512-256, each also as `-sess`; qop `auth`, `auth-int`, or none (RFC 2069 style).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets
from typing import Callable

from .errors import SipParseError
from .grammar import is_quoted_string, is_token, quote, split_outside, unquote

_HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda data: hashlib.md5(data).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
    "SHA-512-256": lambda data: hashlib.new("sha512_256", data).hexdigest(),
}
ALGORITHMS = tuple(name + suffix for name in _HASHES for suffix in ("", "-sess"))
_SCHEME_RE = re.compile(r"[ \t]*([^ \t]+)(?:[ \t]+(.*))?", re.S)
_HEX_RE = re.compile(r"[0-9a-fA-F]+")


def _canonical_algorithm(algorithm: str) -> str | None:
    """`md5-SESS` -> 'MD5-sess'; None when not supported."""
    for name in ALGORITHMS:
        if name.lower() == algorithm.lower():
            return name
    return None


def _hash(algorithm: str, text: str | bytes) -> str:
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogateescape")
    return _HASHES[algorithm.removesuffix("-sess")](data)


def _parse_params(text: str, what: str) -> tuple[str, dict[str, str]]:
    """`Digest a=b, c="d,e"` -> ('Digest', {'a': 'b', 'c': 'd,e'}); names lowercased."""
    if not isinstance(text, str):
        raise SipParseError(f"{what} must be text, not {type(text).__name__}")
    m = _SCHEME_RE.fullmatch(text)
    if m is None or not is_token(m.group(1)):
        raise SipParseError(f"bad {what} {text[:60]!r}: expected '<scheme> name=value, ...'")
    scheme, rest = m.group(1), m.group(2) or ""
    params: dict[str, str] = {}
    for item in split_outside(rest, ","):
        item = item.strip()
        if not item:
            continue
        name, eq, value = item.partition("=")
        name, value = name.strip().lower(), value.strip()
        if not eq or not is_token(name) or not value:
            raise SipParseError(f"bad parameter {item[:40]!r} in {what}")
        if value.startswith('"'):
            if not is_quoted_string(value):
                raise SipParseError(f"bad quoted value of {name!r} in {what}")
            value = unquote(value)
        elif not is_token(value):
            raise SipParseError(f"bad value of {name!r} in {what}: {value[:40]!r}")
        if name in params:
            raise SipParseError(f"parameter {name!r} given twice in {what}")
        params[name] = value
    return scheme, params


@dataclasses.dataclass
class Challenge:
    """A Digest challenge (WWW-Authenticate or Proxy-Authenticate value)."""

    realm: str
    nonce: str
    opaque: str | None = None
    algorithm: str = "MD5"          # as written; MD5 when absent
    qop: list[str] = dataclasses.field(default_factory=list)
    stale: bool = False
    domain: str | None = None
    scheme: str = "Digest"
    params: dict[str, str] = dataclasses.field(default_factory=dict)   # all, names lowercase

    @classmethod
    def parse(cls, value: str) -> "Challenge":
        scheme, params = _parse_params(value, "challenge")
        if scheme.lower() != "digest":
            raise SipParseError(f"unsupported authentication scheme {scheme!r} (only Digest)")
        for needed in ("realm", "nonce"):
            if needed not in params:
                raise SipParseError(f"Digest challenge without {needed}: {value[:80]!r}")
        qop = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
        return cls(realm=params["realm"], nonce=params["nonce"], opaque=params.get("opaque"),
                   algorithm=params.get("algorithm", "MD5"), qop=qop,
                   stale=params.get("stale", "").lower() == "true", domain=params.get("domain"),
                   scheme=scheme, params=params)

    @property
    def supported(self) -> bool:
        """Whether `authorization` can answer it (known algorithm, usable qop)."""
        qops = [q.lower() for q in self.qop]
        return _canonical_algorithm(self.algorithm) is not None and (
            not qops or "auth" in qops or "auth-int" in qops)


@dataclasses.dataclass
class Credentials:
    """Digest credentials (Authorization or Proxy-Authorization value)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: str | None = None           # 8 hex digits as written
    scheme: str = "Digest"
    params: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def parse(cls, value: str) -> "Credentials":
        scheme, params = _parse_params(value, "credentials")
        if scheme.lower() != "digest":
            raise SipParseError(f"unsupported authentication scheme {scheme!r} (only Digest)")
        for needed in ("username", "realm", "nonce", "uri", "response"):
            if needed not in params:
                raise SipParseError(f"Digest credentials without {needed}: {value[:80]!r}")
        if _HEX_RE.fullmatch(params["response"]) is None:
            raise SipParseError(f"Digest response is not hex: {params['response'][:80]!r}")
        qop, nc = params.get("qop"), params.get("nc")
        if qop is not None:
            if "cnonce" not in params or nc is None:
                raise SipParseError("Digest credentials with qop need cnonce and nc")
            if len(nc) != 8 or _HEX_RE.fullmatch(nc) is None:
                raise SipParseError(f"Digest nc must be 8 hex digits, not {nc[:20]!r}")
        return cls(username=params["username"], realm=params["realm"], nonce=params["nonce"],
                   uri=params["uri"], response=params["response"],
                   algorithm=params.get("algorithm", "MD5"), cnonce=params.get("cnonce"),
                   opaque=params.get("opaque"), qop=qop, nc=nc, scheme=scheme, params=params)

    @property
    def nonce_count(self) -> int | None:
        return int(self.nc, 16) if self.nc else None


def _response(algorithm: str, username: str, realm: str, password: str, nonce: str,
              method: str, uri: str, qop: str | None, nc: str | None, cnonce: str | None,
              body: bytes) -> str:
    ha1 = _hash(algorithm, f"{username}:{realm}:{password}")
    if algorithm.endswith("-sess"):
        ha1 = _hash(algorithm, f"{ha1}:{nonce}:{cnonce}")
    if qop == "auth-int":
        ha2 = _hash(algorithm, f"{method}:{uri}:{_hash(algorithm, body)}")
    else:
        ha2 = _hash(algorithm, f"{method}:{uri}")
    if qop:
        return _hash(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _hash(algorithm, f"{ha1}:{nonce}:{ha2}")


def authorization(challenge: Challenge | str, method: str, uri: str, username: str,
                  password: str, cnonce: str | None = None, nc: int = 1,
                  body: bytes = b"") -> str:
    """The Authorization / Proxy-Authorization value answering `challenge`.

    qop=auth is chosen when offered (auth-int, over `body`, when it is the only one); without
    qop the RFC 2069 form is used. Unsupported algorithms or qops raise ValueError.
    """
    if isinstance(challenge, str):
        challenge = Challenge.parse(challenge)
    algorithm = _canonical_algorithm(challenge.algorithm)
    if algorithm is None:
        raise ValueError(f"unsupported digest algorithm {challenge.algorithm!r}")
    qops = [q.lower() for q in challenge.qop]
    qop = "auth" if "auth" in qops else "auth-int" if "auth-int" in qops else None
    if qops and qop is None:
        raise ValueError(f"unsupported qop {challenge.qop!r}")
    if qop is None and algorithm.endswith("-sess"):
        raise ValueError(f"{algorithm} needs a qop (the cnonce goes into HA1)")
    if not 0 < nc < 2 ** 32:
        raise ValueError(f"nc must be from 1 to 2**32-1, not {nc}")
    nc_text = f"{nc:08x}"
    if qop and cnonce is None:
        cnonce = secrets.token_hex(8)
    response = _response(algorithm, username, challenge.realm, password, challenge.nonce,
                         method, uri, qop, nc_text, cnonce, body)
    parts = [f"username={quote(username)}", f"realm={quote(challenge.realm)}",
             f"nonce={quote(challenge.nonce)}", f"uri={quote(uri)}", f'response="{response}"',
             f"algorithm={challenge.algorithm}"]
    if qop:
        parts += [f"cnonce={quote(cnonce or '')}", f"qop={qop}", f"nc={nc_text}"]
    if challenge.opaque is not None:
        parts.append(f"opaque={quote(challenge.opaque)}")
    return f"{challenge.scheme} " + ", ".join(parts)


def verify(credentials: Credentials | str, method: str, password: str, body: bytes = b"") -> bool:
    """Whether the credentials hold the right response for `method` and `password`.

    The caller checks realm, nonce freshness, nc replay and that `uri` matches the
    Request-URI; unsupported algorithms or qops verify as False.
    """
    if isinstance(credentials, str):
        credentials = Credentials.parse(credentials)
    algorithm = _canonical_algorithm(credentials.algorithm)
    qop = credentials.qop.lower() if credentials.qop else None
    if algorithm is None or qop not in (None, "auth", "auth-int"):
        return False
    if qop is None and algorithm.endswith("-sess"):
        return False
    expected = _response(algorithm, credentials.username, credentials.realm, password,
                         credentials.nonce, method, credentials.uri, qop, credentials.nc,
                         credentials.cnonce, body)
    return hmac.compare_digest(expected, credentials.response.lower())


def make_challenge(realm: str, algorithm: str = "MD5", qop: str | None = "auth",
                   nonce: str | None = None, opaque: str | None = None,
                   stale: bool = False) -> str:
    """A WWW-Authenticate / Proxy-Authenticate value (`qop=None` for a challenge without qop)."""
    if _canonical_algorithm(algorithm) is None:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}; known: {ALGORITHMS}")
    parts = [f"realm={quote(realm)}", f"nonce={quote(nonce or secrets.token_hex(16))}"]
    if opaque is not None:
        parts.append(f"opaque={quote(opaque)}")
    parts.append(f"algorithm={algorithm}")
    if qop:
        parts.append(f"qop={quote(qop)}")
    if stale:
        parts.append("stale=TRUE")
    return "Digest " + ", ".join(parts)
