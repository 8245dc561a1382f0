"""The SIPp scenario library, every scenario played SIPp against SIPp over the loopback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from referee.sipp import (SCENARIO_DIR, Sipp, list_scenarios, refer_to_replaces, render, run,
                          start_attended_transferor, start_transferee)

pytestmark = pytest.mark.timeout(90)

# short waits: nothing in these flows needs more on the loopback
FAST_TRANSFEREE = {"bye_wait_ms": 1000}
FAST_NEWCALL = {"talk_ms": 100}


def _sip_uri(sipp: Sipp, user: str) -> str:
    return f"sip:{user}@{sipp.address[0]}:{sipp.address[1]}"


def test_every_template_renders_to_well_formed_xml(tmp_path: Path) -> None:
    names = list_scenarios()
    assert {"uac_transferor_blind", "uas_transferee", "uas_target", "uas_target_replaces",
            "uas_transferee_legacy_sipfrag", "uac_refer_load", "uas_refer_load"} <= set(names)
    for name in names:
        text = (SCENARIO_DIR / f"{name}.xml").read_text()
        assert "referee scenario:" in text and "Plays:" in text, f"{name} lacks its header comment"
        required = {p: "<sip:x@127.0.0.1>" for p in re.findall(r"@param\s+(\w+)\s+required", text)}
        render(name, required, tmp_path / f"{name}.xml")


def test_blind_transfer_sipp_against_sipp() -> None:
    with Sipp("uas_target", calls=1, trace_msg=True,
              params={"require_referred_by": True, "referred_by_regexp": "sip:alice@"}) as carol:
        with start_transferee(carol.address, params=FAST_TRANSFEREE, newcall_params=FAST_NEWCALL) as bob:
            alice = run("uac_transferor_blind", bob.address, calls=1, timeout=30,
                        params={"refer_to": f"<{_sip_uri(carol, 'carol')}>"}, trace_msg=True)
            transferee, newcall = bob.wait(20)
        target = carol.wait(20)
    alice.check(1)
    transferee.check(1)
    newcall.check(1)
    target.check(1)
    # the transferor saw 100 Trying then 200 OK sipfrags and the target got Referred-By
    assert re.search(r"Subscription-State: active[^\n]*\n(?:[^\n]+\n)*\n+SIP/2\.0 100 Trying", alice.message_log)
    assert re.search(r"Subscription-State: terminated[^\n]*\n(?:[^\n]+\n)*\n+SIP/2\.0 200 OK", alice.message_log)
    assert re.search(r"Referred-By: <sip:alice@127\.0\.0\.1:\d+>", target.message_log)
    assert alice.response_times.keys() >= {"setup", "transfer"}


def test_target_requiring_referred_by_fails_without_it() -> None:
    with Sipp("uas_target", calls=1, params={"require_referred_by": True}) as carol:
        with start_transferee(carol.address, params=FAST_TRANSFEREE, newcall_params=FAST_NEWCALL) as bob:
            alice = run("uac_transferor_blind", bob.address, calls=1, timeout=30,
                        params={"refer_to": f"<{_sip_uri(carol, 'carol')}>", "referred_by": ""})
            bob.stop()
        target = carol.stop()
    assert target.failed == 1
    assert "FailedRegexpHdrNotFound" in target.failure_reasons
    assert "Referred-By: not found" in " ".join(target.errors)
    # SIPp counts a failed check but keeps playing the scenario: the call was still answered
    assert alice.successful == 1


def test_transfer_to_a_busy_target_is_reported_in_the_final_notify(tmp_path: Path) -> None:
    busy = tmp_path / "busy.xml"
    busy.write_text("""<?xml version="1.0"?>
<scenario name="busy">
  <recv request="INVITE"/>
  <send><![CDATA[
      SIP/2.0 486 Busy Here
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]busy[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
  <recv request="ACK"/>
</scenario>
""")
    with Sipp(busy, calls=2) as carol:
        with start_transferee(carol.address, calls=2, params=FAST_TRANSFEREE, newcall_params=FAST_NEWCALL) as bob:
            strict = run("uac_transferor_blind", bob.address, calls=1, timeout=30,
                         params={"refer_to": f"<{_sip_uri(carol, 'carol')}>"})
            expecting_busy = run("uac_transferor_blind", bob.address, calls=1, timeout=30, trace_msg=True,
                                 params={"refer_to": f"<{_sip_uri(carol, 'carol')}>",
                                         "final_regexp": r"^SIP/2\.0 486"})
            bob.wait(20)
        carol.wait(20)
    assert strict.failed == 1 and "FailedRegexpDoesntMatch" in strict.failure_reasons
    expecting_busy.check(1)
    assert "SIP/2.0 486 Busy Here" in expecting_busy.message_log


def test_attended_transfer_with_replaces_sipp_against_sipp() -> None:
    with Sipp("uas_target_replaces", calls=2, trace_msg=True,
              params={"replaces_regexp": "^consult-[0-9]+-1;to-tag=[^;]+;from-tag=[^;]+$",
                      "consult_ms": 1000}) as carol:
        with start_transferee(carol.address, params=FAST_TRANSFEREE, newcall_params=FAST_NEWCALL) as bob:
            with start_attended_transferor(bob.address, carol.address, _sip_uri(carol, "carol"),
                                           consult_params={"hold_ms": 5000}) as alice:
                attended, consult = alice.wait(30)
            transferee, newcall = bob.wait(20)
        target = carol.wait(20)
    for result in (attended, consult, transferee, newcall):
        result.check(1)
    target.check(2)  # the consultation call and the INVITE with Replaces
    replaces = re.findall(r"^Replaces: (\S+)", target.message_log, re.MULTILINE)
    assert len(replaces) == 1
    consult_call_id = replaces[0].split(";")[0]
    # the target ended the replaced (consultation) dialog with a BYE
    assert re.search(rf"BYE sip:alice@[^\n]+\n(?:[^\n]+\n)*?Call-ID: {re.escape(consult_call_id)}",
                     target.message_log)


def test_legacy_sipfrag_without_version_is_flagged_by_a_strict_transferor() -> None:
    refer_to = "<sip:carol@127.0.0.1:9>"
    with Sipp("uas_transferee_legacy_sipfrag", calls=2, params={"bye_wait_ms": 1000}) as legacy:
        strict = run("uac_transferor_blind", legacy.address, calls=1, timeout=30,
                     params={"refer_to": refer_to})
        lenient = run("uac_transferor_blind", legacy.address, calls=1, timeout=30, trace_msg=True,
                      params={"refer_to": refer_to, "sipfrag_regexp": "^(SIP/2\\.0 )?[1-6][0-9][0-9]",
                              "final_regexp": "2[0-9][0-9]"})
        device = legacy.wait(20)
    assert strict.failed == 1 and "FailedRegexpDoesntMatch" in strict.failure_reasons
    lenient.check(1)
    assert re.search(r"Content-Type: message/sipfrag\n", lenient.message_log)
    assert re.search(r"Subscription-State: terminated[^\n]*\n(?:[^\n]+\n)*\n+200 OK\n", lenient.message_log)
    assert device.created == 2


def test_refer_load_pair_at_rate() -> None:
    with Sipp("uas_refer_load", calls=30) as uas:
        result = run("uac_refer_load", uas.address, calls=30, rate=30, timeout=30)
        server = uas.wait(20)
    result.check(30)
    server.check(30)
    assert result.response_times.keys() >= {"setup", "transfer"}


def test_escaped_replaces_value() -> None:
    assert refer_to_replaces("sip:carol@h", "a@b", "t1", "f;1") == \
        "<sip:carol@h?Replaces=a%40b%3Bto-tag%3Dt1%3Bfrom-tag%3Df%3B1>"



REFER_ANSWERING_TRANSFEREE = """<?xml version="1.0"?>
<!--
  @param refer_answer  required  status line for the REFER
-->
<scenario name="refer_answer">
  <recv request="INVITE" rrs="true">
    <action>
      <ereg regexp="[^ ].*" search_in="hdr" header="From:" assign_to="remote_party"/>
      <ereg regexp="[^ ].*" search_in="hdr" header="To:" assign_to="local_uri"/>
    </action>
  </recv>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]ra[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:bob@[local_ip]:[local_port]>
      Content-Length: 0

  ]]></send>
  <recv request="ACK"/>
  <recv request="REFER"/>
  <send><![CDATA[
      SIP/2.0 ${refer_answer}
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
  <pause milliseconds="20"/>
  <send retrans="500"><![CDATA[
      NOTIFY [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: [$local_uri];tag=[pid]ra[call_number]
      To: [$remote_party]
      Call-ID: [call_id]
      CSeq: 1 NOTIFY
      Event: refer
      Subscription-State: terminated;reason=noresource
      Content-Type: message/sipfrag;version=2.0
      Content-Length: [len]

      SIP/2.0 200 OK
  ]]></send>
  <recv response="200"/>
  <recv request="BYE"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

  ]]></send>
</scenario>
"""


@pytest.mark.parametrize("refer_answer, expected, accepted", [
    ("202 Accepted", "202", True),
    ("200 OK", "202", False),       # RFC 3515 transferor: a REFER is answered 202
    ("200 OK", "200", True),        # RFC 7647 allows any 2xx: a lenient transferor
])
def test_refer_response_code_expected_by_the_transferor(
        tmp_path: Path, refer_answer: str, expected: str, accepted: bool) -> None:
    template = tmp_path / "refer_answer.xml"
    template.write_text(REFER_ANSWERING_TRANSFEREE)
    with Sipp(template, calls=1, params={"refer_answer": refer_answer}) as bob:
        alice = run("uac_transferor_blind", bob.address, calls=1, timeout=30,
                    params={"refer_to": "<sip:carol@127.0.0.1:9>", "bye_wait_ms": 1,
                            "refer_response": expected})
        bob.stop()
    if accepted:
        alice.check(1)
    else:
        assert alice.failed == 1 and "FailedUnexpectedMessage" in alice.failure_reasons
