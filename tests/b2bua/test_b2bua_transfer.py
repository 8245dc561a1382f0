"""The B2BUA core's transfers without sockets: blind, attended, out of dialog, pass mode, reinvite mode."""

from __future__ import annotations

from b2bua_net import DOMAIN, Net, Phone
from referee.sip import Replaces, Request, escape_header_value
from referee.sip.sdp import Sdp
from referee.sip.sipfrag import Sipfrag
from referee.stack import Dialog, new_tag


def refer(phone: Phone, dialog: Dialog, to_ext: str, replaces: str | None = None, headers=()) -> Request:
    target = f"sip:{to_ext}@{DOMAIN}"
    if replaces:
        target += "?Replaces=" + escape_header_value(replaces)
    return phone.in_dialog(dialog, "REFER", headers=[("Refer-To", f"<{target}>"),
                                                     ("Referred-By", f"<{phone.aor}>"), *headers])


def status_line(notify: Request) -> str:
    frag = Sipfrag.parse(notify.body)
    return f"{frag.status} {frag.reason}"


def notifies(phone: Phone, dialog: Dialog) -> list[Request]:
    """Every NOTIFY waiting at `phone`, answered 200 in `dialog`, in order (retransmissions dropped)."""
    out = []
    while phone.has("NOTIFY"):
        notify = phone.take("NOTIFY")
        if dialog.remote_seq is not None and notify.cseq.seq <= dialog.remote_seq:
            continue
        phone.receive_in(dialog, notify)
        out.append(notify)
    return out


def blind_to_carol(net: Net, carol_answers: int | None = 200):
    """alice calls bob and REFERs him to carol; carol rings and answers `carol_answers`."""
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call = net.connect(alice, bob)
    refer(alice, call.a, carol.ext)
    assert alice.take(202)
    invite = carol.take("INVITE")
    carol.respond(invite, 180)
    dialog = None
    if carol_answers == 200:
        dialog = carol.answer(invite)
        carol.take("ACK")
    elif carol_answers is not None:
        carol.respond(invite, carol_answers)
        carol.take("ACK")
    return call, invite, dialog


# -- blind transfer -------------------------------------------------------------------------------

def test_blind_transfer_success():
    net = Net()
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call, invite, carol_dialog = blind_to_carol(net)
    # the PBX's own INVITE: in the transferee's name, with the REFER's Referred-By (RFC 3892)
    assert invite.from_.uri.user == bob.ext
    assert invite.referred_by.uri.user == alice.ext
    assert invite.call_id not in (call.a.call_id, call.b.call_id)
    got = notifies(alice, call.a)
    assert [status_line(n) for n in got] == ["100 Trying", "180 Ringing", "200 OK"]
    assert [n.header("Event") for n in got] == ["refer"] * 3
    assert got[0].header("Subscription-State").startswith("active;expires=")
    assert got[-1].header("Subscription-State") == "terminated;reason=noresource"
    assert got[-1].header("Content-Type") == "message/sipfrag;version=2.0"
    # the transferor's leg ends; bob and carol are bridged, media follows
    assert alice.take("BYE").call_id == call.a.call_id
    assert not bob.has("BYE") and not bob.has("INVITE")
    assert net.media_path(call.incoming.body) == ("127.0.0.1", carol.rtp_port)
    assert net.media_path(invite.body) == ("127.0.0.1", bob.rtp_port)
    bob.in_dialog(call.b, "BYE")
    assert carol.take("BYE").call_id == carol_dialog.call_id


def test_the_first_notify_comes_after_the_invite_to_the_target():
    net = Net()
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call = net.connect(alice, bob)
    before = len(net.sent)
    refer(alice, call.a, carol.ext)
    order = [m.method if isinstance(m, Request) else m.status for m in net.sent[before:]]
    assert order.index("INVITE") < order.index("NOTIFY")


def test_blind_transfer_declined_or_busy_reports_the_targets_status_and_keeps_the_call():
    for code, reason in ((603, "Decline"), (486, "Busy Here")):
        net = Net()
        alice, bob = net.phones("alice", "bob")
        call, _, _ = blind_to_carol(net, code)
        got = notifies(alice, call.a)
        assert status_line(got[-1]) == f"{code} {reason}"
        assert got[-1].header("Subscription-State") == "terminated;reason=noresource"
        assert not alice.has("BYE") and not bob.has("BYE")
        assert net.media_path(call.incoming.body) == ("127.0.0.1", alice.rtp_port)


def test_transfer_to_an_unknown_extension_reports_404():
    net = Net()
    alice = net.by_name["alice"]
    call = net.connect(alice, net.by_name["bob"])
    refer(alice, call.a, "1999")
    alice.take(202)
    assert [status_line(n) for n in notifies(alice, call.a)] == ["404 Not Found"]


def test_target_that_never_answers_is_reported_408_after_timer_b():
    net = Net()
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call = net.connect(alice, bob)
    refer(alice, call.a, carol.ext)
    alice.take(202)
    net.advance(40)
    carol.inbox.clear()                       # the INVITE and its retransmissions
    assert status_line(notifies(alice, call.a)[-1]) == "408 Request Timeout"
    assert not alice.has("BYE")


def test_ring_timeout_on_the_target_is_reported_487():
    net = Net(ring_timeout=5)
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call, invite, _ = blind_to_carol(net, None)
    net.advance(6)
    carol.respond(carol.take("CANCEL"), 200)
    carol.respond(invite, 487)
    assert status_line(notifies(alice, call.a)[-1]) == "487 Request Terminated"


def test_refer_sub_false_is_echoed_and_no_notify_is_sent():
    net = Net()
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call = net.connect(alice, bob)
    refer(alice, call.a, carol.ext, headers=[("Refer-Sub", "false"), ("Supported", "norefersub")])
    assert alice.take(202).header("Refer-Sub") == "false"
    carol.answer(carol.take("INVITE"))
    assert not alice.has("NOTIFY")
    assert alice.take("BYE")


def test_a_refer_without_exactly_one_refer_to_is_400():
    net = Net()
    alice, bob = net.phones("alice", "bob")
    call = net.connect(alice, bob)
    alice.in_dialog(call.a, "REFER")
    assert alice.take(400)
    alice.in_dialog(call.a, "REFER", headers=[("Refer-To", f"<sip:1003@{DOMAIN}>"),
                                              ("Refer-To", f"<sip:1004@{DOMAIN}>")])
    assert alice.take(400)


def test_transferor_hanging_up_after_the_202_does_not_stop_the_transfer():
    net = Net()
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call = net.connect(alice, bob)
    refer(alice, call.a, carol.ext)
    alice.take(202)
    alice.inbox.clear()
    alice.in_dialog(call.a, "BYE")
    assert alice.take(200)
    assert not bob.has("BYE")
    carol.answer(carol.take("INVITE"))
    assert not alice.has("NOTIFY")
    assert net.media_path(call.incoming.body) == ("127.0.0.1", carol.rtp_port)
    assert not bob.has("BYE")


def test_transferor_gone_and_target_failing_leaves_nobody_for_the_transferee():
    net = Net()
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call = net.connect(alice, bob)
    refer(alice, call.a, carol.ext)
    alice.take(202)
    alice.in_dialog(call.a, "BYE")
    carol.respond(carol.take("INVITE"), 486)
    assert bob.take("BYE").call_id == call.b.call_id


def test_transferee_hanging_up_cancels_the_transfer():
    net = Net()
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call = net.connect(alice, bob)
    refer(alice, call.a, carol.ext)
    alice.take(202)
    invite = carol.take("INVITE")
    carol.respond(invite, 180)
    bob.in_dialog(call.b, "BYE")
    assert carol.take("CANCEL")
    assert status_line(notifies(alice, call.a)[-1]) == "487 Request Terminated"
    assert alice.take("BYE").call_id == call.a.call_id


def test_an_unreachable_target_is_reported_503():
    net = Net()
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call = net.connect(alice, bob)
    refer(alice, call.a, carol.ext)
    sent = carol.take("INVITE")
    original = next(tx.request for tx in net.pbx.waiting if tx.request.call_id == sent.call_id)
    net.feed(net.pbx.send_failed(original, net.now))      # e.g. her TCP connection was refused
    assert status_line(notifies(alice, call.a)[-1]).startswith("503")


def test_second_refer_in_a_dialog_notifies_with_event_id():
    net = Net()
    alice, bob, carol, dave = net.phones("alice", "bob", "carol", "dave")
    call = net.connect(alice, bob)
    refer(alice, call.a, carol.ext)
    alice.take(202)
    carol.respond(carol.take("INVITE"), 486)
    first = notifies(alice, call.a)
    assert {n.header("Event") for n in first} == {"refer"}
    second = refer(alice, call.a, dave.ext)
    alice.take(202)
    dave.answer(dave.take("INVITE"))
    events = {n.header("Event") for n in notifies(alice, call.a)}
    assert events == {f"refer;id={second.cseq.seq}"}


def test_a_held_transferee_is_taken_off_hold_after_the_transfer():
    net = Net()
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call = net.connect(alice, bob)
    alice.in_dialog(call.a, "INVITE", body=alice.sdp("sendonly"), content_type="application/sdp")
    hold = bob.take("INVITE")
    bob.receive_in(call.b, hold, 200, body=Sdp.answer(hold.body, "127.0.0.1", bob.rtp_port))
    alice.take(200)
    refer(alice, call.a, carol.ext)
    alice.take(202)
    invite = carol.take("INVITE")
    assert Sdp.parse(invite.body).direction == "sendrecv"
    carol.answer(invite)
    resume = bob.take("INVITE", where=lambda m: m.cseq.seq > hold.cseq.seq)
    assert Sdp.parse(resume.body).direction == "sendrecv"
    bob.receive_in(call.b, resume, 200, body=Sdp.answer(resume.body, "127.0.0.1", bob.rtp_port))
    assert net.media_path(call.incoming.body) == ("127.0.0.1", carol.rtp_port)     # both ways again
    assert net.media_path(invite.body) == ("127.0.0.1", bob.rtp_port)


def test_two_transfers_at_once_on_different_calls():
    net = Net()
    alice, bob, carol, dave = net.phones("alice", "bob", "carol", "dave")
    call1 = net.connect(alice, bob)
    call2 = net.connect(carol, dave)
    refer(alice, call1.a, carol.ext)          # bob -> carol
    refer(dave, call2.b, alice.ext)           # carol -> alice
    alice.take(202)
    dave.take(202)
    to_carol = carol.take("INVITE")
    to_alice = alice.take("INVITE")
    carol.answer(to_carol)
    alice.answer(to_alice)
    assert status_line(notifies(alice, call1.a)[-1]) == "200 OK"
    assert status_line(notifies(dave, call2.b)[-1]) == "200 OK"
    assert alice.take("BYE").call_id == call1.a.call_id
    assert dave.take("BYE").call_id == call2.b.call_id


# -- attended transfer ------------------------------------------------------------------------------

def attended_setup(net: Net, answer_consultation: bool = True):
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call1 = net.connect(alice, bob)
    if answer_consultation:
        call2 = net.connect(alice, carol)
        return call1, call2, call2.a
    invite = alice.invite(carol.ext)
    alice.take(100)
    incoming = carol.take("INVITE")
    carol.respond(incoming, 180)
    ringing = alice.take(180)
    early = Dialog.from_uac(invite, ringing)
    return call1, (invite, incoming), early


def test_attended_transfer_joins_the_legs_inside_the_pbx():
    net = Net()
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call1, call2, consult = attended_setup(net)
    refer(alice, call1.a, carol.ext, replaces=consult.replaces_value())
    assert alice.take(202)
    assert not carol.has("INVITE")                        # her call goes on
    byes = [alice.take("BYE"), alice.take("BYE")]
    assert {b.call_id for b in byes} == {call1.a.call_id, call2.a.call_id}
    assert [status_line(n) for n in notifies(alice, call1.a)] == ["100 Trying", "200 OK"]
    assert not carol.has("BYE") and not bob.has("BYE")
    assert net.media_path(call1.incoming.body) == ("127.0.0.1", carol.rtp_port)
    assert net.media_path(call2.incoming.body) == ("127.0.0.1", bob.rtp_port)
    carol.in_dialog(call2.b, "BYE")
    assert bob.take("BYE").call_id == call1.b.call_id


def test_attended_transfer_before_the_target_answers():
    net = Net()
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call1, (consult_invite, incoming), early = attended_setup(net, answer_consultation=False)
    refer(alice, call1.a, carol.ext, replaces=early.replaces_value())
    assert alice.take(202)
    assert alice.take(487).call_id == consult_invite.call_id        # alice's consultation leg ends
    assert [status_line(n) for n in notifies(alice, call1.a)] == ["100 Trying"]
    carol.answer(incoming)
    carol.take("ACK")
    assert status_line(notifies(alice, call1.a)[-1]) == "200 OK"
    assert alice.take("BYE").call_id == call1.a.call_id
    assert net.media_path(call1.incoming.body) == ("127.0.0.1", carol.rtp_port)


def test_a_replaces_naming_no_call_is_reported_481():
    net = Net()
    alice, bob = net.phones("alice", "bob")
    call1 = net.connect(alice, bob)
    refer(alice, call1.a, "1003", replaces=f"nothing@x;to-tag={new_tag()};from-tag={new_tag()}")
    alice.take(202)
    assert status_line(notifies(alice, call1.a)[-1]) == "481 Call/Transaction Does Not Exist"
    assert not alice.has("BYE")


def test_a_phones_replaces_is_mapped_to_the_targets_own_dialog():
    """bob (told by alice in some way) INVITEs carol's extension replacing alice's consultation leg:
    carol gets an INVITE whose Replaces names her own dialog with the PBX."""
    net = Net()
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call1, call2, consult = attended_setup(net)
    bob.invite(carol.ext, headers=[("Replaces", consult.replaces_value())])
    bob.take(100)
    incoming = carol.take("INVITE")
    replaces = Replaces.parse(incoming.header("Replaces"))
    theirs = call2.b          # carol's consultation dialog as carol sees it
    assert (replaces.call_id, replaces.to_tag, replaces.from_tag) == (theirs.call_id, theirs.local_tag,
                                                                     theirs.remote_tag)
    carol.answer(incoming)
    assert bob.take(200)
    carol.in_dialog(call2.b, "BYE")                         # carol ends the replaced dialog
    assert alice.take("BYE").call_id == call2.a.call_id    # and alice's consultation leg ends


# -- out-of-dialog REFER (RFC 4538) ------------------------------------------------------------------

def ood_refer(phone: Phone, call_dialog: Dialog, to_ext: str) -> Request:
    target_dialog = f"{call_dialog.call_id};local-tag={call_dialog.remote_tag};remote-tag={call_dialog.local_tag}"
    request = phone.new_request("REFER", f"sip:1002@{DOMAIN}", headers=[
        ("Refer-To", f"<sip:{to_ext}@{DOMAIN}>"), ("Referred-By", f"<{phone.aor}>"),
        ("Target-Dialog", target_dialog)])
    return phone.send_authenticated(request)


def test_out_of_dialog_refer_with_target_dialog_transfers_that_call():
    net = Net()
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call = net.connect(alice, bob)
    sent = ood_refer(alice, call.a, carol.ext)
    accepted = alice.take(202)
    subscription = Dialog.from_uac(sent, accepted)
    carol.answer(carol.take("INVITE"))
    got = notifies(alice, subscription)
    assert [status_line(n) for n in got] == ["100 Trying", "200 OK"]
    assert {n.call_id for n in got} == {sent.call_id}
    assert alice.take("BYE").call_id == call.a.call_id


def test_out_of_dialog_refer_must_authenticate_and_name_a_known_call():
    net = Net()
    alice, bob, carol = net.phones("alice", "bob", "carol")
    net.connect(alice, bob)
    request = alice.new_request("REFER", f"sip:1002@{DOMAIN}", headers=[
        ("Refer-To", f"<sip:1003@{DOMAIN}>"), ("Target-Dialog", f"unknown@x;local-tag=a;remote-tag=b")])
    alice.send(request)
    challenge = alice.take(407)
    alice.send(alice.authorized(request, challenge))
    assert alice.take(481)
    assert not carol.has("INVITE")


# -- options ---------------------------------------------------------------------------------------

def test_challenge_refer_accepts_the_refer_sent_again_with_credentials():
    net = Net(challenge_refer=True)
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call = net.connect(alice, bob)
    first = refer(alice, call.a, carol.ext)
    challenge = alice.take(407)
    again = alice.authorized(first, challenge)
    call.a.local_seq = again.cseq.seq
    alice.send(again)
    assert alice.take(202)
    assert carol.take("INVITE")


def test_pass_mode_sends_the_refer_on_to_the_transferee_and_relays_back():
    net = Net(transfer="pass")
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call = net.connect(alice, bob)
    sent = refer(alice, call.a, carol.ext)
    passed = bob.take("REFER")
    assert passed.call_id == call.b.call_id
    assert passed.header("Refer-To") == sent.header("Refer-To")
    assert passed.header("Referred-By") == sent.header("Referred-By")
    call.b.on_request(passed)
    bob.respond(passed, 202)
    assert alice.take(202)
    notify = bob.in_dialog(call.b, "NOTIFY", headers=[("Event", "refer"), ("Subscription-State", "active")],
                           body=Sipfrag.build(100), content_type="message/sipfrag;version=2.0")
    assert bob.take(200) and notify
    relayed = alice.take("NOTIFY")
    assert relayed.call_id == call.a.call_id
    assert status_line(relayed) == "100 Trying"


def test_pass_mode_maps_the_transferees_replaces_to_the_targets_leg():
    net = Net(transfer="pass")
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call1, call2, consult = attended_setup(net)
    bob.invite(carol.ext, headers=[("Replaces", consult.replaces_value()), ("Referred-By", f"<{alice.aor}>")])
    incoming = carol.take("INVITE")
    replaces = Replaces.parse(incoming.header("Replaces"))
    assert (replaces.call_id, replaces.to_tag) == (call2.b.call_id, call2.b.local_tag)
    assert incoming.header("Referred-By") == f"<{alice.aor}>"


def test_reinvite_mode_passes_sdp_end_to_end_and_reinvites_after_a_transfer():
    net = Net(media="reinvite")
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call, invite, _ = blind_to_carol(net)
    assert Sdp.parse(call.incoming.body).media[0].port == alice.rtp_port      # no relay
    assert Sdp.parse(invite.body).media[0].port == bob.rtp_port               # carol gets bob's media
    reinvite = bob.take("INVITE")
    assert Sdp.parse(reinvite.body).media[0].port == carol.rtp_port           # bob gets carol's media
    assert not net.routes


def test_attended_transfer_in_reinvite_mode_reinvites_both():
    net = Net(media="reinvite")
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call1, call2, consult = attended_setup(net)
    refer(alice, call1.a, carol.ext, replaces=consult.replaces_value())
    assert Sdp.parse(bob.take("INVITE").body).media[0].port == carol.rtp_port
    assert Sdp.parse(carol.take("INVITE").body).media[0].port == bob.rtp_port


def test_notifies_reach_a_tcp_user_over_tcp():
    net = Net(tcp=("alice",))
    alice, bob, carol = net.phones("alice", "bob", "carol")
    call = net.connect(alice, bob)
    refer(alice, call.a, carol.ext)
    alice.take(202)
    assert [w.transport for w in alice.inbox if w.message.method == "NOTIFY"] == ["tcp"]
