"""Mutation fuzzing: whatever bytes arrive, only SipParseError may escape the message layer.

Real messages are mutated (bit flips, truncation, CR/LF/NUL/quote/bracket/%/;/@ insertion,
duplicated and deleted lines, random bytes) and thrown at parse(), at every typed view, at
sipfrag()/sdp(), at the body and digest parsers and at stream framing. Each hypothesis example
runs several mutants, so one run covers well over 10,000 inputs. A second test feeds random
text straight to every header-value parser.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings, strategies as st

from referee.sip import (Challenge, ContentType, Credentials, CSeq, Event, NameAddr, Params,
                         Replaces, Request, Sdp, Sipfrag, SipParseError, SubscriptionState,
                         TargetDialog, Via, frame_stream, parse, parse_date, parse_delta,
                         parse_refer_sub, parse_uri)
from sip_samples import REAL_MESSAGES, SDP_OFFER, SIPFRAG_200, build

EXAMPLES = 2500
MUTANTS_PER_EXAMPLE = 6
MIN_INPUTS = 10_000

# Extra seeds that reach the odd corners: folding, bare LF, odd whitespace, escapes, bodies.
ODD_MESSAGES = [
    b"\r\n\r\n" + build("OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0", [
        "Via  : SIP / 2.0 / UDP\t198.18.0.9 : 5060 ;branch=z9hG4bK-odd , SIP/2.0/TCP [2001:2::9];rport",
        "TO :", " <sip:%75ser@198.18.0.9>", 'from: "J \\"R\\"" <sip:j@198.18.0.8>', "  ;tag = 77",
        "i: odd-1", "cseq: 0009", "  OPTIONS", "Max-Forwards: 70", "Date: Sat, 13 Nov 2010 23:29:00 GMT",
        'Contact: "a,b" <sip:a@198.18.0.8;lr>;q=0.5, <sip:b@198.18.0.8>;expires=30',
        "Record-Route: <sip:p1@198.18.0.7;lr>, <sip:p2@198.18.0.6;lr>", "Expires: 300",
        "Authorization: Digest username=\"bob\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", "
        "response=\"0123456789abcdef0123456789abcdef\", qop=auth, nc=00000001, cnonce=\"c\"",
    ]),
    build("SIP/2.0 200 OK", [
        "v: SIP/2.0/UDP 198.18.0.1;branch=z9hG4bK-sdp", "f: <sip:a@198.18.0.1>;tag=1",
        "t: <sip:b@198.18.0.2>;tag=2", "i: sdp-1", "CSeq: 1 INVITE", "c: application/sdp",
        "WWW-Authenticate: Digest realm=\"r\", nonce=\"abc\", qop=\"auth,auth-int\", algorithm=SHA-256",
    ], SDP_OFFER).replace(b"\r\n", b"\n"),
    build("NOTIFY sip:a@198.18.0.1 SIP/2.0", [
        "Via: SIP/2.0/UDP 198.18.0.2;branch=z9hG4bK-frag", "From: <sip:b@198.18.0.2>;tag=2",
        "To: <sip:a@198.18.0.1>;tag=1", "Call-ID: frag-1", "CSeq: 3 NOTIFY", "Max-Forwards: 70",
        "o: refer;id=3", "Subscription-State: active;expires=60",
        "Content-Type: message/sipfrag",
    ], b"SIP/2.0 180 Ringing\r\nContact: <sip:c@198.18.0.3>\r\n\r\nbody"),
]
CORPUS = REAL_MESSAGES + ODD_MESSAGES
BODIES = [SDP_OFFER, SIPFRAG_200, b"200 OK", b"INVITE sip:c@198.18.0.3 SIP/2.0\r\nTo: <sip:c@h>\r\n"]
AUTH = [b'Digest realm="example.com", nonce="ab12", opaque="x", algorithm=MD5-sess, qop="auth", '
        b"stale=TRUE",
        b'Digest username="bob", realm="example.com", nonce="ab12", uri="sip:b@198.18.0.2", '
        b'response="9f1e3b2c4d5a6b7c8d9e0f1a2b3c4d5e", algorithm=MD5, cnonce="c1", qop=auth, '
        b"nc=00000001"]

SPECIAL = b"\r\n\x00\"<>%;@,:=?& \t\\[]/\x80\xff"
VALUE_SPECIAL = b"\x00\"<>%;@,:=?& \t\\[]/\x80\xff*#"
OPS = ("flip", "truncate", "special", "random", "delete", "dup_line", "del_line", "swap_lines",
       "repeat", "value", "value", "value")

VIEWS = ("via", "cseq", "from_", "to", "contact", "record_route", "route", "refer_to",
         "refer_to_replaces", "referred_by", "event", "subscription_state", "replaces",
         "refer_sub", "target_dialog", "content_type", "content_length", "max_forwards",
         "expires", "date", "supported", "require", "allow", "call_id")


def mutate(data: bytes, op: str, pos: int, extra: bytes) -> bytes:
    n = len(data)
    if n == 0:
        return extra
    i = pos % (n + 1)
    if op == "flip":
        j = pos % n
        return data[:j] + bytes([data[j] ^ (1 << (pos // n % 8))]) + data[j + 1:]
    if op == "truncate":
        return data[:i]
    if op == "special":
        return data[:i] + bytes([SPECIAL[pos % len(SPECIAL)]]) + data[i:]
    if op == "random":
        return data[:i] + extra + data[i:]
    if op == "delete":
        return data[:i] + data[i + 1 + pos % 7:]
    if op == "repeat":
        return data[:i] + data[i:i + 1 + pos % 40] * 2 + data[i + 1 + pos % 40:]
    lines = data.split(b"\n")
    k = pos % len(lines)
    if op == "value":   # damage one header value only, so parse() succeeds and the views work
        colon = lines[k].find(b":")
        if colon != -1:
            at = colon + 1 + (pos // 11) % (len(lines[k]) - colon)
            lines[k] = lines[k][:at] + bytes([VALUE_SPECIAL[pos % len(VALUE_SPECIAL)]]) + lines[k][at:]
    elif op == "dup_line":
        lines.insert(k, lines[k])
    elif op == "del_line":
        del lines[k]
    else:   # swap_lines
        m = (pos // 7) % len(lines)
        lines[k], lines[m] = lines[m], lines[k]
    return b"\n".join(lines)


def random_mutant(rng: random.Random, data: bytes) -> bytes:
    for _ in range(rng.randint(1, 5)):
        data = mutate(data, rng.choice(OPS), rng.randrange(1 << 30),
                      bytes(rng.randrange(256) for _ in range(rng.randint(0, 6))))
    return data


def exercise_message(data: bytes) -> str:
    """Parse and touch everything; returns 'parsed' or 'rejected'. Anything else escaping fails."""
    try:
        frame_stream(data)
    except SipParseError:
        pass
    for stream in (True, False):
        try:
            msg = parse(data, stream=stream)
        except SipParseError as exc:
            assert isinstance(exc.offset, int) and 0 <= exc.offset <= len(data) + 1
            assert isinstance(exc.reason, str) and exc.reason
            result = "rejected"
            continue
        result = "parsed"
        assert bytes(msg) == data
        for view in VIEWS:
            try:
                getattr(msg, view)
            except SipParseError:
                pass
        for call in (msg.validate, msg.sipfrag, msg.sdp, lambda: Sipfrag.parse(msg.body, strict=False),
                     lambda: msg.uri if isinstance(msg, Request) else None,
                     lambda: Challenge.parse(msg.header("WWW-Authenticate") or ""),
                     lambda: Credentials.parse(msg.header("Authorization") or "")):
            try:
                call()
            except SipParseError:
                pass
        msg.values("Contact"), msg.summary(), repr(msg)
        clone = msg.copy()
        clone.set_header("Max-Forwards", "69")
        bytes(clone)
    return result


def exercise_text(data: bytes) -> None:
    for call in (lambda: Sdp.parse(data), lambda: Sipfrag.parse(data),
                 lambda: Sipfrag.parse(data, strict=False),
                 lambda: Challenge.parse(data.decode("utf-8", "replace")),
                 lambda: Credentials.parse(data.decode("utf-8", "replace"))):
        try:
            call()
        except SipParseError:
            pass


mutation = st.tuples(st.sampled_from(OPS), st.integers(0, 1 << 30), st.binary(max_size=6))


def test_fuzz_only_sip_parse_error_escapes():
    counts = {"inputs": 0, "parsed": 0, "rejected": 0, "bodies": 0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(message=st.sampled_from(CORPUS), body=st.sampled_from(BODIES + AUTH),
           mutations=st.lists(mutation, min_size=1, max_size=5), seed=st.integers(0, 1 << 32))
    def run(message, body, mutations, seed):
        data, text = message, body
        for op, pos, extra in mutations:
            data = mutate(data, op, pos, extra)
            text = mutate(text, op, pos, extra)
        rng = random.Random(seed)
        mutants = [data] + [random_mutant(rng, message) for _ in range(MUTANTS_PER_EXAMPLE - 1)]
        for mutant in mutants:
            counts[exercise_message(mutant)] += 1
            counts["inputs"] += 1
        exercise_text(text)
        exercise_text(random_mutant(rng, body))
        counts["bodies"] += 2

    run()
    print(f"\nfuzz: {counts['inputs']} mutated messages ({counts['parsed']} parsed, "
          f"{counts['rejected']} rejected), {counts['bodies']} mutated bodies/auth values")
    assert counts["inputs"] >= MIN_INPUTS
    assert counts["parsed"] > 0 and counts["rejected"] > 0


HEADER_PARSERS = (NameAddr.parse, Via.parse, CSeq.parse, Event.parse, SubscriptionState.parse,
                  Replaces.parse, TargetDialog.parse, ContentType.parse, parse_refer_sub,
                  parse_uri, parse_date, parse_delta, Params.parse, Challenge.parse,
                  Credentials.parse)
SIP_ALPHABET = st.sampled_from(list("sip:SIP/2.0 UDP<>\"\\;,=@?&%[]:.-_tag branch 0123456789abcdef\t\x00\u00e9"))


@settings(max_examples=1500, deadline=None, database=None)
@given(st.lists(st.one_of(SIP_ALPHABET, st.characters()), max_size=60).map("".join))
def test_fuzz_header_value_parsers_only_raise_sip_parse_error(text):
    for parser in HEADER_PARSERS:
        try:
            parser(text)
        except SipParseError:
            pass
