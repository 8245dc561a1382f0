"""Who the PBX's users are, where they are, and whether a request really comes from one of them.

- Users come from the profile's [users]. A user with a password registers (digest, 401); a
  user without one is static: reached at sip:EXT@HOST:PORT from the profile.
- A user binds only its own extension; one contact per extension, kept in memory.
- Requests that start something (INVITE, REFER, SUBSCRIBE) are challenged with 407; the
  authenticated user must be the From user.
"""

from __future__ import annotations

import dataclasses
import secrets

from digest_users import user_with_valid_credentials
from referee.sip import NameAddr, Request, SipUri, make_challenge

MAX_NONCES = 512


@dataclasses.dataclass
class Binding:
    """Where an extension is reached: its contact URI and the transport to use."""
    contact: str
    transport: str            # 'udp' | 'tcp'

    @property
    def address(self) -> tuple[str, int]:
        return uri_address(self.contact)


def uri_address(uri_text: str) -> tuple[str, int]:
    uri = NameAddr.parse(f"<{uri_text}>").uri
    if not isinstance(uri, SipUri):
        raise ValueError(f"not a SIP URI: {uri_text}")
    return (uri.param("maddr") or uri.host).strip("[]"), uri.port or 5060


def uri_transport(uri_text: str, default: str) -> str:
    uri = NameAddr.parse(f"<{uri_text}>").uri
    value = uri.transport if isinstance(uri, SipUri) else None
    return value if value in ("udp", "tcp") else default


@dataclasses.dataclass
class Verdict:
    """The outcome of checking a request's credentials: go on (user set) or answer (status set)."""
    user: object | None = None                # the profile User the request comes from
    status: int | None = None
    reason: str = ""
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)


class Registrar:
    def __init__(self, users, realm: str, default_transport: str = "udp") -> None:
        self.users = {u.extension: u for u in users}
        self.by_username = {(u.username or u.extension): u for u in users}
        self.realm = realm
        self.nonces: list[str] = []
        self.bindings: dict[str, Binding] = {}
        for user in users:
            if user.password is None:          # static user: where the profile says
                host = f"[{user.host}]" if ":" in user.host else user.host
                self.bindings[user.extension] = Binding(f"sip:{user.extension}@{host}:{user.port}",
                                                        default_transport)

    # -- digest --------------------------------------------------------------------------------
    def challenge(self) -> str:
        nonce = secrets.token_hex(16)
        self.nonces = (self.nonces + [nonce])[-MAX_NONCES:]
        return make_challenge(self.realm, nonce=nonce)

    def credentials_of(self, request: Request, header: str):
        """The user whose valid credentials `request` carries in `header`, or None."""
        return user_with_valid_credentials(request, header, self.by_username, self.realm, self.nonces)

    def claimed_user(self, request: Request):
        uri = request.from_.uri
        return self.users.get(uri.user or "") if isinstance(uri, SipUri) else None

    def authorize(self, request: Request, challenge_always: bool = False) -> Verdict:
        """A request that must come from the user in its From: 407 without (valid) credentials,
        403 from a non-user or with another user's credentials."""
        claimed = self.claimed_user(request)
        if claimed is None:
            return Verdict(status=403, reason="Forbidden (not a user of this PBX)")
        if claimed.password is None:
            return Verdict(user=claimed)
        user = None if challenge_always else self.credentials_of(request, "Proxy-Authorization")
        if user is None:
            return Verdict(status=407, reason="Proxy Authentication Required",
                           headers=[("Proxy-Authenticate", self.challenge())])
        if user.extension != claimed.extension:
            return Verdict(status=403, reason="Forbidden (credentials of another user)")
        return Verdict(user=user)

    # -- REGISTER ----------------------------------------------------------------------------
    def register(self, request: Request, transport: str) -> Verdict:
        """Apply a REGISTER: 200 with the binding, 401, 403 or 404 (Verdict.status is always set)."""
        to_uri = request.to.uri
        user = self.users.get(to_uri.user or "") if isinstance(to_uri, SipUri) else None
        if user is None:
            return Verdict(status=404, reason="Not Found")
        if user.password is not None:
            auth = self.credentials_of(request, "Authorization")
            if auth is None:
                return Verdict(status=401, reason="Unauthorized", headers=[("WWW-Authenticate", self.challenge())])
            if auth.extension != user.extension:
                return Verdict(status=403, reason="Forbidden (credentials of another user)")
        contacts = request.contact
        expires = request.expires
        if contacts:
            contact = contacts[0]
            if expires == 0 or contact.params.get("expires") == "0":
                self.bindings.pop(user.extension, None)
            elif isinstance(contact.uri, SipUri):
                via_transport = request.via[0].transport.lower()
                self.bindings[user.extension] = Binding(str(contact.uri), uri_transport(
                    str(contact.uri), via_transport if via_transport in ("udp", "tcp") else "udp"))
        binding = self.bindings.get(user.extension)
        headers = [("Contact", f"<{binding.contact}>;expires={expires or 300}")] if binding else []
        return Verdict(user=user, status=200, reason="OK", headers=headers)

    # -- lookup -----------------------------------------------------------------------------
    def locate(self, extension: str | None) -> tuple[Binding | None, int, str]:
        """(binding, 0, '') for a reachable extension, else (None, status, reason):
        404 for an extension that does not exist (RFC 3261 §16.5), 480 for one not registered."""
        if extension not in self.users:
            return None, 404, "Not Found"
        binding = self.bindings.get(extension)
        if binding is None:
            return None, 480, "Temporarily Unavailable"
        return binding, 0, ""
