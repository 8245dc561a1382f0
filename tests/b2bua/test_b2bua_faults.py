"""Each fault of the B2BUA test PBX breaks the one behaviour its FAULTS line names."""

from __future__ import annotations

from b2bua.faults import FAULTS
from b2bua_net import DOMAIN, Net
from referee.sip import Request
from referee.sip.sdp import Sdp
from test_b2bua_transfer import attended_setup, blind_to_carol, notifies, ood_refer, refer, status_line

TESTED: set[str] = set()


def fault(name: str):
    """Mark a test as the one showing `name`'s effect (and check the name exists)."""
    assert name in FAULTS, name
    TESTED.add(name)
    return lambda fn: fn


@fault("bye_transferee_on_failure")
def test_bye_transferee_on_failure():
    net = Net(faults=["bye_transferee_on_failure"])
    alice, bob = net.phones("alice", "bob")
    call, _, _ = blind_to_carol(net, 603)
    assert bob.take("BYE").call_id == call.b.call_id
    assert status_line(notifies(alice, call.a)[-1]) == "603 Decline"
    assert alice.take("BYE").call_id == call.a.call_id


@fault("status_503")
def test_status_503():
    net = Net(faults=["status_503"])
    alice, bob = net.phones("alice", "bob")
    call, _, _ = blind_to_carol(net, 486)
    assert status_line(notifies(alice, call.a)[-1]) == "503 Service Unavailable"
    assert not bob.has("BYE")


@fault("no_notify")
def test_no_notify():
    net = Net(faults=["no_notify"])
    alice = net.by_name["alice"]
    call, _, _ = blind_to_carol(net)
    assert not alice.has("NOTIFY")
    assert alice.take("BYE").call_id == call.a.call_id


@fault("notify_before_invite")
def test_notify_before_invite():
    net = Net(faults=["notify_before_invite"])
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call = net.connect(alice, bob)
    before = len(net.sent)
    refer(alice, call.a, carol.ext)
    order = [m.method if isinstance(m, Request) else m.status for m in net.sent[before:]]
    assert order.index("NOTIFY") < order.index("INVITE")
    first = notifies(alice, call.a)[0]
    assert status_line(first) == "200 OK"
    assert first.header("Subscription-State").startswith("terminated")


@fault("media_to_transferor")
def test_media_to_transferor():
    net = Net(faults=["media_to_transferor"])
    alice, carol = net.phones("alice", "carol")
    call, invite, _ = blind_to_carol(net)
    assert alice.take("BYE")
    assert net.media_path(call.incoming.body) == ("127.0.0.1", alice.rtp_port)    # bob's RTP to alice
    assert net.media_path(invite.body) is not None


@fault("replaces_unmapped")
def test_replaces_unmapped():
    net = Net(faults=["replaces_unmapped"])
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call1, call2, consult = attended_setup(net)
    refer(alice, call1.a, carol.ext, replaces=consult.replaces_value())
    alice.take(202)
    incoming = carol.take("INVITE")
    assert incoming.header("Replaces") == consult.replaces_value()      # alice's view, unknown to carol
    # a phone's Replaces is not mapped either
    bob.invite(carol.ext, headers=[("Replaces", consult.replaces_value())])
    assert carol.take("INVITE").header("Replaces") == consult.replaces_value()


@fault("refer_unauthenticated")
def test_refer_unauthenticated():
    net = Net(faults=["refer_unauthenticated"])
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call = net.connect(alice, bob)
    target_dialog = f"{call.a.call_id};local-tag={call.a.remote_tag};remote-tag={call.a.local_tag}"
    alice.send(alice.new_request("REFER", f"sip:1002@{DOMAIN}", headers=[
        ("Refer-To", f"<sip:1003@{DOMAIN}>"), ("Target-Dialog", target_dialog)]))
    assert alice.take(202)
    assert carol.take("INVITE")
    # without Target-Dialog too: accepted, the failure shows only in the NOTIFY
    alice.send(alice.new_request("REFER", f"sip:1002@{DOMAIN}", headers=[("Refer-To", "<sip:+1900@198.18.0.99>")]))
    assert alice.take(202)


@fault("no_referred_by")
def test_no_referred_by():
    net = Net(faults=["no_referred_by"])
    _, invite, _ = blind_to_carol(net)
    assert not invite.has("Referred-By")


@fault("no_terminated")
def test_no_terminated():
    net = Net(faults=["no_terminated"])
    call, _, _ = blind_to_carol(net)
    final = notifies(net.by_name["alice"], call.a)[-1]
    assert status_line(final) == "200 OK"
    assert final.header("Subscription-State").startswith("active")


@fault("no_event_id")
def test_no_event_id():
    net = Net(faults=["no_event_id"])
    alice, bob, carol, dave = net.phones("alice", "bob", "carol", "dave")
    call = net.connect(alice, bob)
    refer(alice, call.a, carol.ext)
    carol.respond(carol.take("INVITE"), 486)
    notifies(alice, call.a)
    refer(alice, call.a, dave.ext)
    assert {n.header("Event") for n in notifies(alice, call.a)} == {"refer"}


@fault("ignore_refer_sub")
def test_ignore_refer_sub():
    net = Net(faults=["ignore_refer_sub"])
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call = net.connect(alice, bob)
    refer(alice, call.a, carol.ext, headers=[("Refer-Sub", "false")])
    assert alice.take(202).header("Refer-Sub") == "false"
    assert alice.has("NOTIFY")


@fault("accept_bad_refer")
def test_accept_bad_refer():
    net = Net(faults=["accept_bad_refer"])
    alice, bob = net.phones("alice", "bob")
    call = net.connect(alice, bob)
    alice.in_dialog(call.a, "REFER")
    assert alice.take(202)
    assert status_line(notifies(alice, call.a)[-1]).startswith("400")
    alice.in_dialog(call.a, "REFER", headers=[("Refer-To", f"<sip:1003@{DOMAIN}>"),
                                              ("Refer-To", f"<sip:1004@{DOMAIN}>")])
    assert alice.take(202)


@fault("abandon_on_bye")
def test_abandon_on_bye():
    net = Net(faults=["abandon_on_bye"])
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call = net.connect(alice, bob)
    refer(alice, call.a, carol.ext)
    alice.take(202)
    invite = carol.take("INVITE")
    carol.respond(invite, 180)
    alice.in_dialog(call.a, "BYE")
    assert carol.take("CANCEL")
    assert bob.take("BYE").call_id == call.b.call_id


@fault("hold_stuck")
def test_hold_stuck():
    net = Net(faults=["hold_stuck"])
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call = net.connect(alice, bob)
    alice.in_dialog(call.a, "INVITE", body=alice.sdp("sendonly"), content_type="application/sdp")
    hold = bob.take("INVITE")
    bob.receive_in(call.b, hold, 200, body=Sdp.answer(hold.body, "127.0.0.1", bob.rtp_port))
    refer(alice, call.a, carol.ext)
    invite = carol.take("INVITE")
    assert Sdp.parse(invite.body).direction == "sendonly"
    carol.answer(invite)
    assert not bob.has("INVITE")                 # never taken off hold
    assert net.media_path(call.incoming.body) is None        # bob is not heard by carol


@fault("hold_answer_sendrecv")
def test_hold_answer_sendrecv():
    for faults, wanted in (([], "recvonly"), (["hold_answer_sendrecv"], "sendrecv")):
        net = Net(faults=faults)
        alice, bob = net.phones("alice", "bob")
        call = net.connect(alice, bob)
        alice.in_dialog(call.a, "INVITE", body=alice.sdp("sendonly"), content_type="application/sdp")
        hold = bob.take("INVITE")
        bob.receive_in(call.b, hold, 200, body=Sdp.answer(hold.body, "127.0.0.1", bob.rtp_port))
        answer = alice.take(200)
        assert Sdp.parse(answer.body).direction == wanted


@fault("no_bye_replaced")
def test_no_bye_replaced():
    net = Net(faults=["no_bye_replaced"])
    alice, carol = net.phones("alice", "carol")
    call1, call2, consult = attended_setup(net)
    refer(alice, call1.a, carol.ext, replaces=consult.replaces_value())
    assert alice.take("BYE").call_id == call1.a.call_id
    assert not alice.has("BYE")                  # the consultation leg stays


@fault("early_replace_fails")
def test_early_replace_fails():
    net = Net(faults=["early_replace_fails"])
    alice, carol = net.phones("alice", "carol")
    call1, _, early = attended_setup(net, answer_consultation=False)
    refer(alice, call1.a, carol.ext, replaces=early.replaces_value())
    assert alice.take(603)
    # an answered consultation is still joined
    net = Net(faults=["early_replace_fails"])
    alice, carol = net.phones("alice", "carol")
    call1, call2, consult = attended_setup(net)
    refer(alice, call1.a, carol.ext, replaces=consult.replaces_value())
    assert alice.take(202)


@fault("ood_wrong_call")
def test_ood_wrong_call():
    net = Net(faults=["ood_wrong_call"])
    alice, bob, carol, dave = net.phones("alice", "bob", "carol", "dave")
    call_bob = net.connect(alice, bob)
    call_dave = net.connect(alice, dave)
    ood_refer(alice, call_bob.a, carol.ext)      # names the call with bob
    alice.take(202)
    invite = carol.take("INVITE")
    assert invite.from_.uri.user == dave.ext     # but dave is transferred


@fault("tcp_notify_udp")
def test_tcp_notify_udp():
    net = Net(faults=["tcp_notify_udp"], tcp=("alice",))
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call = net.connect(alice, bob)
    refer(alice, call.a, carol.ext)
    assert [w.transport for w in alice.inbox if getattr(w.message, "method", "") == "NOTIFY"] == ["udp"]
    assert [w.transport for w in alice.inbox if getattr(w.message, "status", 0) == 202] == ["tcp"]


@fault("reauth_refer")
def test_reauth_refer():
    net = Net(faults=["reauth_refer"], challenge_refer=True)
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call = net.connect(alice, bob)
    first = refer(alice, call.a, carol.ext)
    again = alice.authorized(first, alice.take(407))
    call.a.local_seq = again.cseq.seq
    alice.send(again)
    assert alice.take(407)
    assert not carol.has("INVITE")


@fault("notify_lies_ringing")
def test_notify_lies_ringing():
    net = Net(faults=["notify_lies_ringing"])
    alice = net.by_name["alice"]
    call, _, _ = blind_to_carol(net, 486)
    got = notifies(alice, call.a)
    assert [status_line(n) for n in got] == ["100 Trying", "200 OK", "486 Busy Here"]
    assert got[1].header("Subscription-State").startswith("active")


def test_every_fault_has_a_test():
    assert TESTED == set(FAULTS)


def test_the_same_flows_without_the_fault_are_conformant():
    """A few of the faulty flows above, run on the conformant PBX, behave the other way."""
    net = Net()
    alice, bob = net.phones("alice", "bob")
    call, invite, _ = blind_to_carol(net, 603)
    assert not bob.has("BYE") and invite.has("Referred-By")
    final = notifies(alice, call.a)[-1]
    assert status_line(final) == "603 Decline" and final.header("Subscription-State").startswith("terminated")
