"""Agents talking to each other over real loopback sockets: calls, REFER, NOTIFY, transfers."""

import asyncio

import pytest

from referee.agent import Agent, ExpectationFailed
from referee.sip import Replaces


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def _agents(*names, transport="udp"):
    return [await Agent.start(n, transport=transport) for n in names]


async def _close(*agents):
    for a in agents:
        await a.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_call_and_bye(transport):
    async def scenario():
        alice, bob = await _agents("alice", "bob", transport=transport)
        try:
            bob.auto_answer = 200
            call = await alice.call(bob.uri)
            assert call.response.status == 200
            ack = await bob.expect("ACK", timeout=2)
            assert ack.message.cseq.method == "ACK"
            bob_call = bob.calls[0]
            assert bob_call.call_id == call.call_id
            assert (await alice.bye(call)).status == 200
            await bob.expect("BYE", timeout=2)
            assert not bob_call.is_up
            trying = [m for m in alice.messages("received") if getattr(m, "status", None) == 100]
            assert trying, "bob sent 100 Trying automatically"
        finally:
            await _close(alice, bob)
    run(scenario())


def test_blind_transfer_between_three_agents():
    """alice calls bob, alice REFERs bob to carol; bob (scripted transferee) calls carol and NOTIFYs."""
    async def scenario():
        alice, bob, carol = await _agents("alice", "bob", "carol")
        try:
            bob.auto_answer = 200
            carol.auto_answer = 200
            call = await alice.call(bob.uri)
            xfer = await alice.refer(call, to=carol.uri)
            refer = await bob.expect("REFER", timeout=2, headers={"Refer-To": f"<{carol.uri}>"})
            assert refer.message.referred_by.uri.user == "alice"
            await bob.accept_refer(refer)
            assert (await xfer.final(2)).status == 202
            bob_call = refer.incoming.call
            await bob.notify_transfer(bob_call, 100)
            new_call = await bob.call(carol.uri, headers={"Referred-By": refer.message.header("Referred-By")})
            await bob.notify_transfer(bob_call, 200)
            n1 = await alice.expect("NOTIFY", call=call, sipfrag="1xx", state="active", timeout=2)
            n2 = await alice.expect("NOTIFY", call=call, sipfrag=200, state="terminated", timeout=2)
            assert n1.message.event.package == "refer" and n2.message.header("Content-Type").startswith(
                "message/sipfrag")
            inv = await carol.expect("INVITE", headers={"Referred-By": {"present": True}}, timeout=2)
            assert inv.message.call_id == new_call.call_id
            sub = call.subscriptions[0]
            assert sub.statuses == [100, 200] and sub.state.value == "terminated"
            assert not [f for f in alice.findings if "NOTIFY" in f]
            await alice.bye(call)
            await bob.bye(new_call)
        finally:
            await _close(alice, bob, carol)
    run(scenario())


def test_attended_transfer_replaces_round_trip():
    async def scenario():
        alice, bob, carol = await _agents("alice", "bob", "carol")
        try:
            bob.auto_answer = carol.auto_answer = 200
            call_ab = await alice.call(bob.uri)
            call_ac = await alice.call(carol.uri)
            await alice.refer(call_ab, to=carol.uri, replaces=call_ac)
            refer = await bob.expect("REFER", timeout=2)
            target = refer.message.refer_to.uri
            replaces = Replaces.parse(target.header("Replaces"))
            carol_call = carol.calls[0]
            # as carol sees it: to-tag is carol's local tag, from-tag the remote (alice) tag
            assert replaces.call_id == carol_call.call_id
            assert replaces.to_tag == carol_call.dialog.local_tag
            assert replaces.from_tag == carol_call.dialog.remote_tag
            assert "%40" in str(target) or "@" not in replaces.call_id
        finally:
            await _close(alice, bob, carol)
    run(scenario())


def test_refer_sub_false_and_second_refer_event_id():
    async def scenario():
        alice, bob = await _agents("alice", "bob")
        try:
            bob.auto_answer = 200
            call = await alice.call(bob.uri)
            await alice.refer(call, to="sip:carol@127.0.0.1:9", refer_sub=False)
            r1 = await bob.expect("REFER", headers={"Refer-Sub": "false"}, timeout=2)
            n1 = await bob.accept_refer(r1)
            assert n1 is not None and not n1.enabled
            await alice.refer(call, to="sip:dave@127.0.0.1:9")
            r2 = await bob.expect("REFER", timeout=2)
            await bob.accept_refer(r2)
            await bob.notify_transfer(r2.incoming.call, 100)
            n = await alice.expect("NOTIFY", timeout=2)
            assert n.message.event.id == str(r2.message.cseq.seq)
            assert call.subscriptions[1].event_id_ok(n.message)
        finally:
            await _close(alice, bob)
    run(scenario())


def test_expect_timeout_names_what_arrived():
    async def scenario():
        alice, bob = await _agents("alice", "bob")
        try:
            bob.auto_options = None
            await alice.request("OPTIONS", bob.uri)
            with pytest.raises(ExpectationFailed) as info:
                await bob.expect("INVITE", timeout=0.5)
            text = str(info.value)
            assert "expected INVITE within 0.5 s" in text and "OPTIONS" in text
        finally:
            await _close(alice, bob)
    run(scenario())


def test_unanswered_request_times_out_with_clear_message():
    async def scenario():
        from referee.stack import TimerConfig
        alice = await Agent.start("alice", timers=TimerConfig(t1=0.05, t2=0.2))
        silent = await Agent.start("silent")
        silent.auto_options = None
        try:
            cr = await alice.request("OPTIONS", silent.uri)
            with pytest.raises(ExpectationFailed) as info:
                await cr.final(10)
            assert "timer F" in str(info.value)
            sent = [e for e in alice.log if e.direction == "sent"]
            assert len(sent) > 3 and all(e.message.via[0].branch == sent[0].message.via[0].branch for e in sent)
        finally:
            await _close(alice, silent)
    run(scenario())


def test_malformed_bytes_are_recorded_not_fatal():
    async def scenario():
        alice, bob = await _agents("alice", "bob")
        try:
            await alice.send_raw(b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: broken\r\n\r\n", bob.address)
            bob.auto_answer = 200
            call = await alice.call(bob.uri)         # bob still works
            assert call.response.status == 200
            assert bob.defects and "missing mandatory header" in bob.defects[0].error
        finally:
            await _close(alice, bob)
    run(scenario())


def test_digest_authentication_is_answered():
    async def scenario():
        from referee.sip.digest import Credentials, make_challenge, verify
        alice = await Agent.start("alice", credentials=("alice", "s3cret"))
        pbx = await Agent.start("pbx")
        pbx.auto_answer = None
        try:
            pending = await alice.invite(pbx.uri)
            first = await pbx.expect("INVITE", timeout=2)
            await pbx.respond(first, 407, headers={"Proxy-Authenticate": make_challenge("referee", "SHA-256")})
            second = await pbx.expect("INVITE", timeout=2,
                                      headers={"Proxy-Authorization": {"present": True}})
            creds = Credentials.parse(second.message.header("Proxy-Authorization"))
            assert verify(creds, "INVITE", "s3cret")
            assert second.message.cseq.seq == first.message.cseq.seq + 1
            await pbx.answer(second)
            assert (await pending.final(2)).status == 200
        finally:
            await _close(alice, pbx)
    run(scenario())


def test_answering_an_invite_its_sender_cancelled_names_the_cancel():
    """The INVITE was CANCELled (and answered 487) before the scripted answer: the peer's doing,
    shown by its CANCEL — an ExpectationFailed with that evidence, not an error of the suite."""
    async def scenario():
        alice, bob = await _agents("alice", "bob")
        try:
            bob.auto_answer = None
            invite = await alice.invite(bob.uri)
            incoming = await bob.expect("INVITE", timeout=2)
            await alice.cancel(invite)
            await bob.expect("CANCEL", timeout=2)
            assert (await invite.final(2)).status == 487
            with pytest.raises(ExpectationFailed, match="cancelled by its sender") as raised:
                await bob.answer(incoming)
            [evidence] = raised.value.evidence
            assert evidence.message.startswith("CANCEL ") and evidence.party == "bob"
        finally:
            await _close(alice, bob)
    run(scenario())
