"""Digest authentication: RFC 2617 §3.5 and RFC 7616 §3.9.1 worked examples, -sess variants,
the legacy no-qop form, server-side verification, parsing and its errors."""

from __future__ import annotations

import hashlib

import pytest

from referee.sip import (ALGORITHMS, Challenge, Credentials, SipParseError, authorization,
                         make_challenge, verify)

RFC2617_CHALLENGE = ('Digest realm="testrealm@host.com", qop="auth,auth-int", '
                     'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
                     'opaque="5ccc069c403ebaf9f0171e9517f40e41"')
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


def rfc7616_challenge(algorithm: str) -> str:
    return (f'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
            f'nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"')


def params_of(value: str) -> dict[str, str]:
    return Credentials.parse(value).params


def test_rfc2617_worked_example():
    value = authorization(RFC2617_CHALLENGE, "GET", "/dir/index.html", "Mufasa", "Circle Of Life",
                          cnonce="0a4f113b", nc=1)
    p = params_of(value)
    assert p["response"] == "6629fae49393a05397450978507c4ef1"
    assert (p["qop"], p["nc"], p["cnonce"]) == ("auth", "00000001", "0a4f113b")
    assert p["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41" and p["uri"] == "/dir/index.html"
    assert value.startswith('Digest username="Mufasa", realm="testrealm@host.com", ')


@pytest.mark.parametrize("algorithm, expected", [
    ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
])
def test_rfc7616_worked_examples(algorithm, expected):
    value = authorization(rfc7616_challenge(algorithm), "GET", "/dir/index.html", "Mufasa",
                          "Circle of Life", cnonce=RFC7616_CNONCE, nc=1)
    p = params_of(value)
    assert p["response"] == expected and p["algorithm"] == algorithm
    assert p["opaque"] == RFC7616_OPAQUE and p["qop"] == "auth"


def independent_response(hash_name: str, sess: bool, user: str, realm: str, password: str,
                         nonce: str, cnonce: str, nc: str, method: str, uri: str) -> str:
    """The RFC 7616 §3.4.1-3.4.3 formulas written out directly with hashlib."""
    def h(text: str) -> str:
        return hashlib.new(hash_name, text.encode()).hexdigest()
    ha1 = h(f"{user}:{realm}:{password}")
    if sess:
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    return h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{h(f'{method}:{uri}')}")


@pytest.mark.parametrize("algorithm, hash_name, sess", [
    ("MD5-sess", "md5", True), ("SHA-256-sess", "sha256", True), ("SHA-512-256", "sha512_256", False),
    ("SHA-512-256-sess", "sha512_256", True)])
def test_sess_and_sha512_256_match_the_formulas(algorithm, hash_name, sess):
    challenge = make_challenge("biloxi.example.com", algorithm=algorithm, nonce="84a4cc6f3082121f32b42a")
    value = authorization(challenge, "INVITE", "sip:bob@biloxi.example.com", "bob", "zanzibar",
                          cnonce="0a4f113b", nc=3)
    expected = independent_response(hash_name, sess, "bob", "biloxi.example.com", "zanzibar",
                                    "84a4cc6f3082121f32b42a", "0a4f113b", "00000003", "INVITE",
                                    "sip:bob@biloxi.example.com")
    assert params_of(value)["response"] == expected
    assert verify(value, "INVITE", "zanzibar")


def test_legacy_challenge_without_qop():
    challenge = make_challenge("atlanta.example.com", qop=None, nonce="ea9c8e88df84f1cec4341ae6cbe5a359")
    value = authorization(challenge, "REGISTER", "sip:atlanta.example.com", "alice", "secret")
    p = params_of(value)
    ha1 = hashlib.md5(b"alice:atlanta.example.com:secret").hexdigest()
    ha2 = hashlib.md5(b"REGISTER:sip:atlanta.example.com").hexdigest()
    assert p["response"] == hashlib.md5(
        f"{ha1}:ea9c8e88df84f1cec4341ae6cbe5a359:{ha2}".encode()).hexdigest()
    assert "qop" not in p and "cnonce" not in p and "nc" not in p
    assert verify(value, "REGISTER", "secret") and not verify(value, "REGISTER", "wrong")


def test_auth_int_covers_the_body():
    challenge = make_challenge("example.com", qop="auth-int")
    value = authorization(challenge, "MESSAGE", "sip:b@example.com", "a", "pw", body=b"hello")
    assert params_of(value)["qop"] == "auth-int"
    assert verify(value, "MESSAGE", "pw", body=b"hello")
    assert not verify(value, "MESSAGE", "pw", body=b"tampered")


def test_server_side_round_trip_and_rejections():
    challenge = make_challenge("198.18.0.10", algorithm="SHA-256", opaque="op1")
    parsed = Challenge.parse(challenge)
    assert (parsed.realm, parsed.algorithm, parsed.qop, parsed.opaque) == (
        "198.18.0.10", "SHA-256", ["auth"], "op1")
    value = authorization(parsed, "REFER", "sip:bob@198.18.0.2", "alice", "pw", nc=2)
    creds = Credentials.parse(value)
    assert creds.nonce_count == 2 and creds.nonce == parsed.nonce and len(creds.cnonce) == 16
    assert verify(creds, "REFER", "pw")
    assert not verify(creds, "INVITE", "pw")          # the method is covered
    assert not verify(creds, "REFER", "other")
    unknown = Credentials.parse(value.replace("algorithm=SHA-256", "algorithm=SHA-1"))
    assert not verify(unknown, "REFER", "pw")


def test_challenge_parsing_details():
    c = Challenge.parse('digest  realm="a,b\\"c", nonce=xyz, stale=TRUE, domain="sip:a sip:b", '
                        'algorithm=md5-sess, qop="auth-int, auth", X-Ext="1"')
    assert (c.scheme, c.realm, c.nonce, c.stale) == ("digest", 'a,b"c', "xyz", True)
    assert c.qop == ["auth-int", "auth"] and c.domain == "sip:a sip:b" and c.params["x-ext"] == "1"
    assert c.supported and c.algorithm == "md5-sess"
    assert not Challenge.parse('Digest realm="r", nonce="n", algorithm=SHA-1').supported


@pytest.mark.parametrize("value, reason", [
    ("", "bad challenge"),
    ('Basic realm="r"', "unsupported authentication scheme 'Basic'"),
    ('NoOneKnowsThisScheme opaque-data=here', "unsupported authentication scheme"),
    ('Digest nonce="n"', "without realm"),
    ('Digest realm="r"', "without nonce"),
    ('Digest realm="r, nonce="n"', "bad quoted value"),
    ('Digest realm="r", realm="s", nonce="n"', "given twice"),
    ('Digest realm', "bad parameter"),
    ('Digest realm=, nonce="n"', "bad parameter"),
    ('Digest realm=a b, nonce="n"', "bad value"),
])
def test_malformed_challenges_raise(value, reason):
    with pytest.raises(SipParseError, match=reason):
        Challenge.parse(value)


@pytest.mark.parametrize("value, reason", [
    ('Digest realm="r", nonce="n", uri="u", response="00"', "without username"),
    ('Digest username="u", realm="r", nonce="n", uri="u", response="xyz"', "not hex"),
    ('Digest username="u", realm="r", nonce="n", uri="u", response="00", qop=auth', "need cnonce and nc"),
    ('Digest username="u", realm="r", nonce="n", uri="u", response="00", qop=auth, cnonce="c", nc=1',
     "8 hex digits"),
])
def test_malformed_credentials_raise(value, reason):
    with pytest.raises(SipParseError, match=reason):
        Credentials.parse(value)


def test_client_side_argument_errors():
    with pytest.raises(ValueError, match="unsupported digest algorithm"):
        authorization('Digest realm="r", nonce="n", algorithm=SHA-1', "INVITE", "sip:x", "u", "p")
    with pytest.raises(ValueError, match="unsupported qop"):
        authorization('Digest realm="r", nonce="n", qop="other"', "INVITE", "sip:x", "u", "p")
    with pytest.raises(ValueError, match="needs a qop"):
        authorization('Digest realm="r", nonce="n", algorithm=MD5-sess', "INVITE", "sip:x", "u", "p")
    with pytest.raises(ValueError, match="nc must be"):
        authorization(RFC2617_CHALLENGE, "INVITE", "sip:x", "u", "p", nc=0)
    with pytest.raises(ValueError, match="unsupported digest algorithm"):
        make_challenge("r", algorithm="SHA-1")
    assert set(ALGORITHMS) == {"MD5", "MD5-sess", "SHA-256", "SHA-256-sess", "SHA-512-256",
                               "SHA-512-256-sess"}


def test_make_challenge_format():
    assert make_challenge("example.com", nonce="abc", opaque="o", stale=True) == (
        'Digest realm="example.com", nonce="abc", opaque="o", algorithm=MD5, qop="auth", stale=TRUE')
