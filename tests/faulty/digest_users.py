"""Digest authentication on the server side, shared by the test PBXs (pbx.py, b2bua/)."""

from __future__ import annotations

from referee.sip import Credentials, Request, SipParseError, verify


def user_with_valid_credentials(request: Request, header: str, users_by_name: dict, realm: str,
                                nonces: list[str]):
    """The user whose valid credentials `request` carries in `header` (Authorization or
    Proxy-Authorization): our realm, a nonce we issued, and a response computed with that
    user's password (RFC 3261 §22.4). None when no value of the header passes."""
    for value in request.header_all(header):
        try:
            creds = Credentials.parse(value)
        except SipParseError:
            continue
        user = users_by_name.get(creds.username)
        if user is None or user.password is None or creds.realm != realm or creds.nonce not in nonces:
            continue
        if verify(creds, request.method, user.password, request.body):
            return user
    return None
