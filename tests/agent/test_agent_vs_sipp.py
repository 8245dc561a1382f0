"""The agent against SIPp, a real third-party SIP peer: INVITE, REFER, NOTIFY, BYE."""

import asyncio
import subprocess

import pytest

from referee.agent import Agent
from referee.dut.launcher import free_port
from tests.programs import require_program


@pytest.fixture(autouse=True)
def _sipp():
    """SIPp is the peer of every test here (Debian package sip-tester, ./install.sh)."""
    require_program("sipp")

# SIPp plays a transferee: answers the call, accepts the REFER, reports 100 then 200 by NOTIFY.
TRANSFEREE = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="transferee">
  <recv request="INVITE" rrs="true"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:sipp@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=- 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
]]></send>
  <recv request="ACK"/>
  <recv request="REFER">
    <!-- the NOTIFY goes back in the dialog: its To is the REFER's From -->
    <action><ereg regexp=".*" search_in="hdr" header="From:" assign_to="referto_from"/></action>
  </recv>
  <send><![CDATA[
SIP/2.0 202 Accepted
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:sipp@[local_ip]:[local_port]>
Content-Length: 0

]]></send>
  <send><![CDATA[
NOTIFY [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]
To: [$referto_from]
[routes]
Call-ID: [call_id]
CSeq: 1 NOTIFY
Max-Forwards: 70
Contact: <sip:sipp@[local_ip]:[local_port]>
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


def test_agent_transfers_a_call_with_sipp_as_transferee(tmp_path):
    scenario = tmp_path / "transferee.xml"
    scenario.write_text(TRANSFEREE)
    port = free_port()
    sipp = subprocess.Popen(["sipp", "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(port), "-m", "1",
                             "-nostdin", "-trace_err", "-timeout", "20", "-timeout_error"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    async def scenario_run():
        alice = await Agent.start("alice")
        try:
            await asyncio.sleep(0.3)        # SIPp binds its socket
            call = await alice.call(f"sip:sipp@127.0.0.1:{port}")
            xfer = await alice.refer(call, to="sip:carol@198.18.0.9")
            assert (await xfer.final(5)).status == 202
            notify = await alice.expect("NOTIFY", call=call, sipfrag=200, state="terminated", timeout=5)
            assert notify.message.event.package == "refer"
            assert call.subscriptions[0].final_status == 200
            assert (await alice.bye(call)).status == 200
        finally:
            await alice.close()

    try:
        asyncio.run(asyncio.wait_for(scenario_run(), 30))
    finally:
        try:
            sipp.wait(20)
        except subprocess.TimeoutExpired:
            sipp.kill()
            sipp.wait()
    errors = list(tmp_path.glob("*_errors.log"))
    assert sipp.returncode == 0, (sipp.stderr.read() if sipp.stderr else "") + "".join(e.read_text() for e in errors)
