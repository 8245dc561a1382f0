"""One HTTP request with a bounded timeout and basic or digest authentication (RFC 7617, 7616).

Built on http.client: no proxy from the environment is ever consulted, names are never
resolved by the caller (profiles give IP literals), and HTTPS certificates are not verified
(a device's API serves a self-made certificate, like the SIP side of the suite).
Digest uses the SIP stack's implementation (referee.sip.digest: MD5, SHA-256, SHA-512-256).
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import socket
import ssl
import urllib.parse

from referee.sip import digest


class HttpCallError(OSError):
    """The request could not be made (no connection, timeout, a broken answer)."""


@dataclasses.dataclass(frozen=True)
class HttpAnswer:
    status: int
    reason: str
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def send(method: str, url: str, body: str = "", headers=(), auth: str = "none", username: str = "",
         password: str = "", timeout: float = 5.0) -> HttpAnswer:
    """Send one request (answering one digest challenge if asked); the whole exchange is bounded
    by `timeout` per connection step. Raises HttpCallError."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    fields = dict(headers)
    data = body.encode("utf-8") if body else None
    if data is not None and not any(k.lower() == "content-type" for k in fields):
        fields["Content-Type"] = "application/x-www-form-urlencoded"
    if auth == "basic":
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        fields["Authorization"] = f"Basic {token}"
    answer, challenge = _exchange(parts, method, target, data, fields, timeout)
    if answer.status == 401 and auth == "digest" and challenge:
        try:
            fields["Authorization"] = digest.authorization(challenge, method, target, username, password,
                                                           body=data or b"")
        except ValueError as exc:        # an algorithm or qop the digest code does not support
            raise HttpCallError(f"cannot answer the digest challenge {challenge!r}: {exc}") from None
        answer, _ = _exchange(parts, method, target, data, fields, timeout)
    return answer


def _exchange(parts, method: str, target: str, data: bytes | None, headers: dict,
              timeout: float) -> tuple[HttpAnswer, str]:
    host, port = parts.hostname or "", parts.port
    if parts.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, target, body=data, headers=headers)
        response = conn.getresponse()
        text = response.read(65536).decode("utf-8", "replace")
        challenge = ""
        for value in response.headers.get_all("WWW-Authenticate") or []:
            if value.strip().lower().startswith("digest"):
                challenge = value
                break
        return HttpAnswer(response.status, response.reason, text), challenge
    except socket.timeout:
        raise HttpCallError(f"no answer within {timeout:g} s") from None
    except (OSError, http.client.HTTPException) as exc:
        raise HttpCallError(f"{type(exc).__name__}: {exc}") from None
    finally:
        conn.close()
