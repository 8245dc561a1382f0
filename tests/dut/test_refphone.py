"""The reference phone (pjsip via pjsua2) driven through RefPhoneDriver, against itself.

Every test runs real console processes on loopback with OS-chosen ports; the events checked
are what pjsip reported from real SIP traffic between them.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import time
from typing import Callable, Iterator

import pytest

from referee.dut.driver import CAPABILITIES, DriverError, PhoneEvent
from referee.dut.refphone import RefPhoneDriver
from referee.dut.refphone import protocol

pytestmark = pytest.mark.timeout(60)

Factory = Callable[..., RefPhoneDriver]


@pytest.fixture
def phone() -> Iterator[Factory]:
    """Start reference phones on demand; every one is stopped (and reaped) afterwards."""
    started: list[RefPhoneDriver] = []

    def make(user: str, **kwargs: object) -> RefPhoneDriver:
        driver = RefPhoneDriver(user=user, **kwargs)  # type: ignore[arg-type]
        started.append(driver)
        driver.start(timeout=15)
        return driver

    yield make
    for driver in started:
        driver.stop()


def _user_of(uri: str) -> str:
    return uri.split(":", 1)[1].split("@", 1)[0]


def _call_up(a: RefPhoneDriver, b: RefPhoneDriver) -> tuple[str, str]:
    """a calls b (b auto-answers); returns (a's call handle, b's call handle)."""
    ca = a.dial(b.sip_uri)
    cb = b.wait_event("incoming").get("call")
    a.wait_event("confirmed", call=ca)
    b.wait_event("confirmed", call=cb)
    return ca, cb


# -- protocol ------------------------------------------------------------------------------

def test_protocol_round_trip_with_awkward_values() -> None:
    fields = {"call": "3", "remote": '"Al Ice" <sip:a@127.0.0.1>;tag=x y', "empty": "", "q": "it's"}
    line = protocol.format_event("incoming", fields)
    parsed = protocol.parse_line(line + "\r\n")
    assert parsed is not None and parsed.kind == "event" and parsed.event == "incoming"
    assert parsed.fields == fields
    assert protocol.parse_line("12:00:01 pjsua_core.c some log") is None
    with pytest.raises(protocol.ProtocolError, match="expected key=value"):
        protocol.parse_line("EVENT log novalue")


# -- calls ---------------------------------------------------------------------------------

@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_basic_call(phone: Factory, transport: str) -> None:
    a = phone("alice", transport=transport)
    b = phone("bob", transport=transport)
    assert b.port > 0 and b.sip_uri.startswith(f"sip:bob@127.0.0.1:{b.port}")

    ca = a.dial(b.sip_uri)
    incoming = b.wait_event("incoming")
    assert incoming.get("replaces") == "0"
    assert _user_of(incoming.get("remote")) == "alice"
    assert incoming.get("request_uri") == b.sip_uri
    assert a.wait_event("ringing", call=ca).get("code") == "180"
    a_up = a.wait_event("confirmed", call=ca)
    b_up = b.wait_event("confirmed", call=incoming.get("call"))
    assert a_up.get("sip_call_id") == b_up.get("sip_call_id") == incoming.get("sip_call_id")
    assert a.calls() == {ca: "confirmed"}

    a.hangup(ca)
    assert b.wait_event("disconnected", call=incoming.get("call")).get("code") == "200"
    a.wait_event("disconnected", call=ca)
    assert a.calls() == {} and b.calls() == {}


def test_answer_modes_busy_decline_and_manual_reject(phone: Factory) -> None:
    a = phone("alice")
    b = phone("bob", answer="busy")

    ca = a.dial(b.sip_uri)
    assert a.wait_event("disconnected", call=ca).get("code") == "486"
    b.wait_event("incoming")

    b.set_answer_mode("decline")
    ca = a.dial(b.sip_uri)
    assert a.wait_event("disconnected", call=ca).get("code") == "603"
    b.wait_event("incoming")

    b.set_answer_mode("manual")
    ca = a.dial(b.sip_uri)
    cb = b.wait_event("incoming").get("call")
    a.wait_event("ringing", call=ca)
    assert b.calls() == {cb: "early"}
    b.reject(480)
    assert a.wait_event("disconnected", call=ca).get("code") == "480"
    b.wait_event("disconnected", call=cb)


def test_manual_answer_then_hold(phone: Factory) -> None:
    a = phone("alice")
    b = phone("bob", answer="manual")
    ca = a.dial(b.sip_uri)
    cb = b.wait_event("incoming").get("call")
    a.wait_event("ringing", call=ca)
    b.answer(cb)
    a.wait_event("confirmed", call=ca)
    b.wait_event("confirmed", call=cb)
    a.hold(ca)                      # re-INVITE with a=sendonly; the call stays up
    b.hangup(cb)
    a.wait_event("disconnected", call=ca)


# -- transfers -----------------------------------------------------------------------------

def test_blind_transfer_among_three_phones(phone: Factory) -> None:
    a, b, c = phone("alice"), phone("bob"), phone("carol")
    ca, cb = _call_up(a, b)

    b.transfer(c.sip_uri, cb)

    request = a.wait_event("transfer_request", call=ca)
    assert request.get("target") == c.sip_uri            # the Refer-To B sent
    assert _user_of(request.get("referred_by").strip("<>")) == "bob"
    assert request.get("accepted") == "1"
    new_call = request.get("new_call")

    incoming = c.wait_event("incoming")
    assert _user_of(incoming.get("remote")) == "alice"
    assert incoming.get("replaces") == "0"
    assert _user_of(incoming.get("referred_by").strip("<>")) == "bob"  # copied from the REFER
    c.wait_event("confirmed", call=incoming.get("call"))
    a.wait_event("confirmed", call=new_call)

    # B: the REFER's 202, then NOTIFYs whose sipfrags go 100 ... 200 (final, terminated).
    assert b.wait_event("transfer_status", call=cb, source="response").get("code") == "202"
    final = b.wait_event("transfer_status", call=cb, final="1")
    assert final.get("source") == "notify" and final.get("code") == "200"
    assert final.get("sipfrag") == "SIP/2.0 200 OK"
    assert final.get("subscription_state").startswith("terminated")
    notified = [e.get("code") for e in b.events() if e.kind == "transfer_status" and e.get("source") == "notify"]
    assert notified[0] == "100" and notified[-1] == "200"

    # the original call ends on both sides (B hangs up after the 200 sipfrag)
    b.wait_event("disconnected", call=cb)
    a.wait_event("disconnected", call=ca)
    assert a.calls() == {new_call: "confirmed"}
    assert b.calls() == {}


def test_attended_transfer_with_replaces(phone: Factory) -> None:
    a, b, c = phone("alice"), phone("bob"), phone("carol")
    ca, cb = _call_up(a, b)
    b.hold(cb)
    consult = b.dial(c.sip_uri)
    c_first = c.wait_event("incoming").get("call")
    consult_id = b.wait_event("confirmed", call=consult).get("sip_call_id")

    b.transfer_attended(cb, consult)

    request = a.wait_event("transfer_request", call=ca)
    target = request.get("target")
    assert target.startswith(f"<{c.sip_uri}?") and "Replaces=" in target
    assert consult_id in target           # Replaces names the B-C dialog

    replacing = c.wait_event("incoming", replaces="1")
    assert replacing.get("replaced_call") == c_first
    assert replacing.get("replaces_header").startswith(consult_id + ";")
    assert _user_of(replacing.get("remote")) == "alice"
    c.wait_event("confirmed", call=replacing.get("call"))
    c.wait_event("disconnected", call=c_first)       # the replaced dialog is ended by C
    a.wait_event("confirmed", call=request.get("new_call"))

    final = b.wait_event("transfer_status", call=cb, final="1")
    assert (final.get("source"), final.get("code")) == ("notify", "200")
    b.wait_event("disconnected", call=consult)
    b.wait_event("disconnected", call=cb)
    a.wait_event("disconnected", call=ca)
    assert b.calls() == {}


def test_refer_policy_decline(phone: Factory) -> None:
    a, b, c = phone("alice"), phone("bob"), phone("carol")
    a.set_refer_policy("decline")
    ca, cb = _call_up(a, b)

    b.transfer(c.sip_uri, cb)

    request = a.wait_event("transfer_request", call=ca)
    assert request.get("accepted") == "0" and request.get("target") == c.sip_uri
    # what the transferor sees: the REFER answered 603, final; no NOTIFY; the call stays up
    status = b.wait_event("transfer_status", call=cb)
    assert (status.get("source"), status.get("code"), status.get("final")) == ("response", "603", "1")
    assert b.calls() == {cb: "confirmed"} and a.calls() == {ca: "confirmed"}
    assert c.events() == []


def test_blind_transfer_without_subscription(phone: Factory) -> None:
    a, b, c = phone("alice"), phone("bob"), phone("carol")
    ca, cb = _call_up(a, b)

    b.transfer(c.sip_uri, cb, refer_sub=False)

    assert a.wait_event("transfer_request", call=ca).get("refer_sub") == "false"
    status = b.wait_event("transfer_status", call=cb)
    assert (status.get("source"), status.get("code"), status.get("final")) == ("response", "202", "1")
    assert status.get("refer_sub") == "false"          # RFC 4488: no implicit subscription
    c.wait_event("confirmed")
    b.wait_event("disconnected", call=cb)
    assert [e for e in b.events() if e.get("source") == "notify"] == []


# -- raw SIP against the phone -------------------------------------------------------------

def _raw_request(method: str, ruri: str, here: str, call_id: str, tag: str, cseq: int,
                 to: str, body: str = "") -> bytes:
    head = [
        f"{method} {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP {here};rport;branch=z9hG4bK{random.getrandbits(48):x}",
        "Max-Forwards: 70",
        f"From: <sip:tester@{here}>;tag={tag}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:tester@{here}>",
    ]
    if body:
        head.append("Content-Type: application/sdp")
    head.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


def _await_final(sock: socket.socket, method: str, deadline: float) -> str:
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data = sock.recv(65535).decode()
        except socket.timeout:
            break
        status = data.split("\r\n", 1)[0].split(" ")
        cseq = [line for line in data.split("\r\n") if line.lower().startswith("cseq:")]
        if status[0] == "SIP/2.0" and int(status[1]) >= 200 and cseq and cseq[0].split()[-1] == method:
            return data
    raise AssertionError(f"no final response to {method} before the deadline")


def _header(message: str, name: str) -> str:
    for line in message.split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return ""


def test_raw_invite_to_any_user_part(phone: Factory) -> None:
    b = phone("bob")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sip, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp:
        sip.bind(("127.0.0.1", 0))
        rtp.bind(("127.0.0.1", 0))
        here = f"127.0.0.1:{sip.getsockname()[1]}"
        ruri = f"sip:nobody-configured@127.0.0.1:{b.port}"
        call_id, tag = f"raw-{random.getrandbits(64):x}", "t1"
        sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               f"m=audio {rtp.getsockname()[1]} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
        target = ("127.0.0.1", b.port)
        sip.sendto(_raw_request("INVITE", ruri, here, call_id, tag, 1, f"<{ruri}>", sdp), target)
        ok = _await_final(sip, "INVITE", time.monotonic() + 10)
        assert ok.startswith("SIP/2.0 200"), ok.split("\r\n", 1)[0]

        incoming = b.wait_event("incoming", sip_call_id=call_id)
        assert incoming.get("request_uri") == ruri and _user_of(incoming.get("remote")) == "tester"

        to = _header(ok, "to")
        contact = _header(ok, "contact").strip("<>").split(">", 1)[0]
        sip.sendto(_raw_request("ACK", contact, here, call_id, tag, 1, to), target)
        b.wait_event("confirmed", call=incoming.get("call"))
        sip.sendto(_raw_request("BYE", contact, here, call_id, tag, 2, to), target)
        assert _await_final(sip, "BYE", time.monotonic() + 10).startswith("SIP/2.0 200")
        b.wait_event("disconnected", call=incoming.get("call"))


# -- driver behaviour ----------------------------------------------------------------------

def test_capabilities_are_known_names() -> None:
    assert RefPhoneDriver.capabilities <= CAPABILITIES
    assert {"transferee", "transferor", "attended", "target", "replaces"} <= RefPhoneDriver.capabilities


def test_bad_input_gives_clear_errors(phone: Factory) -> None:
    with pytest.raises(DriverError, match="answer must be one of"):
        RefPhoneDriver(answer="sometimes")
    with pytest.raises(DriverError, match="IPv6 is not supported"):
        RefPhoneDriver(host="::1")
    a = phone("alice")
    with pytest.raises(DriverError, match="expected a sip: URI"):
        a.dial("tel:+15550100")
    with pytest.raises(DriverError, match="no call '42'"):
        a.hangup("42")
    with pytest.raises(DriverError, match="answer mode must be one of"):
        a.set_answer_mode("later")
    with pytest.raises(DriverError, match="no event transfer_request within 0.2s"):
        a.wait_event("transfer_request", timeout=0.2)
    assert a.alive()       # refused commands leave the console running

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        busy = RefPhoneDriver(user="late", port=taken.getsockname()[1])
        with pytest.raises(DriverError, match="Address already in use"):
            busy.start()
        assert not busy.alive()


def test_crash_is_reported_as_driver_error(phone: Factory) -> None:
    a = phone("alice")
    os.kill(a.pid, signal.SIGKILL)
    with pytest.raises(DriverError, match="killed by signal 9") as waited:
        a.wait_event("incoming", timeout=30)
    assert "READY 127.0.0.1" in str(waited.value)      # the last output lines are included
    with pytest.raises(DriverError, match="console died"):
        a.dial("sip:x@127.0.0.1:9")
    assert not a.alive()


def test_start_stop_leaves_no_process(phone: Factory) -> None:
    b = phone("bob")
    a = phone("alice")
    a.dial(b.sip_uri)
    b.wait_event("confirmed")
    pid, port = a.pid, a.port
    assert pid is not None and os.path.exists(f"/proc/{pid}")
    a.stop()                                        # with a call up
    assert not os.path.exists(f"/proc/{pid}")       # gone and reaped (no zombie entry)
    assert not a.alive() and a.pid is None
    b.wait_event("disconnected")                    # the call was hung up, not dropped
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", port))             # the SIP port was released
    a.stop()                                        # stopping twice is harmless


def test_events_are_kept_while_commands_run(phone: Factory) -> None:
    a, b = phone("alice"), phone("bob", answer="noanswer")
    calls = [a.dial(b.sip_uri) for _ in range(3)]     # events arrive while dialling
    for call in calls:
        a.wait_event("ringing", call=call)
    remotes = {b.wait_event("incoming").get("sip_call_id") for _ in calls}
    assert len(remotes) == 3
    assert [e.kind for e in a.events()].count("ringing") == 3
    assert all(isinstance(e, PhoneEvent) for e in a.events())


def test_transfer_to_an_unusable_target(phone: Factory) -> None:
    a, b = phone("alice"), phone("bob")
    ca, cb = _call_up(a, b)

    b.transfer("sip:@@@", cb)             # pjsua sends it as is; the transferee cannot dial it

    request = a.wait_event("transfer_request", call=ca)
    assert request.get("target") == "sip:@@@" and request.get("accepted") == "1"
    failed = a.wait_event("disconnected", call=request.get("new_call"))
    assert failed.get("code") == "500"
    final = b.wait_event("transfer_status", call=cb, final="1")
    assert (final.get("source"), final.get("code")) == ("notify", "500")
    # a failed transfer leaves the original call up on both sides
    assert a.calls() == {ca: "confirmed"} and b.calls() == {cb: "confirmed"}
