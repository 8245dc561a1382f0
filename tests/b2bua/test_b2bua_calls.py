"""The B2BUA core without sockets: registrar and auth, calls as separate legs, media relay, hold."""

from __future__ import annotations

from b2bua_net import DOMAIN, Net
from referee.sip import NameAddr, Request
from referee.sip.sdp import Sdp
from referee.stack import new_tag


# -- registrar and authentication -----------------------------------------------------------------

def test_register_is_challenged_then_binds_the_contact():
    net = Net(register=False)
    alice = net.by_name["alice"]
    request = alice.new_request("REGISTER", f"sip:{DOMAIN}", headers=[("Expires", "300")])
    request.set_header("To", f"<{alice.aor}>")
    alice.send(request)
    challenge = alice.take(401)
    assert challenge.header("WWW-Authenticate").startswith("Digest ")
    alice.send(alice.authorized(request, challenge))
    ok = alice.take(200)
    assert NameAddr.parse(ok.header("Contact")).uri.port == alice.port
    assert net.pbx.registrar.bindings["1001"].contact == alice.uri


def test_register_with_another_users_credentials_is_forbidden():
    net = Net(register=False)
    alice, bob = net.phones("alice", "bob")
    request = bob.new_request("REGISTER", f"sip:{DOMAIN}")
    request.set_header("To", f"<{alice.aor}>")          # bob tries to bind alice's extension
    bob.send(request)
    bob.send(bob.authorized(request, bob.take(401)))
    assert bob.take(403)
    assert "1001" not in net.pbx.registrar.bindings


def test_register_for_an_unknown_extension_is_404():
    net = Net(register=False)
    alice = net.by_name["alice"]
    request = alice.new_request("REGISTER", f"sip:{DOMAIN}")
    request.set_header("To", f"<sip:4242@{DOMAIN}>")
    alice.send(request)
    assert alice.take(404)


def test_invite_is_challenged_407_and_needs_the_from_users_credentials():
    net = Net()
    alice, bob = net.phones("alice", "bob")
    invite = alice.new_request("INVITE", f"sip:1002@{DOMAIN}", body=alice.sdp(), content_type="application/sdp")
    alice.send(invite)
    challenge = alice.take(407)
    assert challenge.header("Proxy-Authenticate")
    alice.ack_non2xx(invite, challenge)
    # bob's credentials on an INVITE whose From is alice: refused
    forged = bob.authorized(invite, challenge)
    forged.set_header("Via", alice.via())
    alice.send(forged)
    assert alice.take(403)
    assert not bob.has("INVITE")


def test_requests_from_non_users_are_forbidden():
    net = Net()
    alice = net.by_name["alice"]
    for method in ("INVITE", "REFER", "SUBSCRIBE"):
        request = alice.new_request(method, f"sip:1002@{DOMAIN}")
        request.set_header("From", f"<sip:9999@{DOMAIN}>;tag={new_tag()}")
        alice.send(request)
        assert alice.take(403).reason.startswith("Forbidden")


def test_static_users_are_reached_at_their_profile_address_without_challenge():
    net = Net(static=True)
    alice, bob = net.phones("alice", "bob")
    call = net.connect(alice, bob)
    assert call.incoming.uri_text == f"sip:1002@127.0.0.1:{bob.port}"


def test_unknown_extension_is_404_and_unregistered_is_480():
    net = Net(register=False)
    alice, bob = net.phones("alice", "bob")
    alice.register()
    alice.invite("1999")
    alice.take(100)
    assert alice.take(404).reason == "Not Found"
    alice.invite(bob.ext)
    alice.take(100)
    assert alice.take(480).reason == "Temporarily Unavailable"


def test_options_is_answered_200():
    net = Net()
    alice = net.by_name["alice"]
    alice.send(alice.new_request("OPTIONS", f"sip:{DOMAIN}"))
    assert "REFER" in alice.take(200).header("Allow")


def test_a_bad_message_is_logged_and_dropped():
    net = Net()
    alice = net.by_name["alice"]
    net.feed(net.pbx.receive(b"INVITE nonsense\r\n\r\n", alice.address, "udp", net.now))
    net.feed(net.pbx.receive(b"\x00\xff" * 40, alice.address, "udp", net.now))
    assert any("dropped" in line for line in net.logs)
    alice.send(alice.new_request("OPTIONS", f"sip:{DOMAIN}"))
    assert alice.take(200)


# -- calls ------------------------------------------------------------------------------------------

def test_a_call_is_two_legs_with_their_own_call_ids_tags_and_the_pbx_contact():
    net = Net()
    alice, bob = net.phones("alice", "bob")
    call = net.connect(alice, bob)
    assert call.a.call_id != call.b.call_id
    assert {call.a.local_tag, call.a.remote_tag}.isdisjoint({call.b.local_tag, call.b.remote_tag})
    assert "b2bua@127.0.0.1:5070" in call.incoming.header("Contact")
    assert "b2bua@127.0.0.1:5070" in call.ok.header("Contact")
    assert call.incoming.from_.uri.user == "1001"       # the caller's identity reaches bob


def test_media_is_relayed_between_the_bridged_legs():
    net = Net()
    alice, bob = net.phones("alice", "bob")
    call = net.connect(alice, bob)
    # each phone is given a relay port of the PBX, which forwards to the other phone
    for sdp, far in ((call.ok.body, bob), (call.incoming.body, alice)):
        assert Sdp.parse(sdp).connection.address == "127.0.0.1"
        assert Sdp.parse(sdp).media[0].port != far.rtp_port
        assert net.media_path(sdp) == ("127.0.0.1", far.rtp_port)


def test_bye_on_one_leg_ends_the_other():
    net = Net()
    alice, bob = net.phones("alice", "bob")
    call = net.connect(alice, bob)
    alice.in_dialog(call.a, "BYE")
    assert alice.take(200)
    bye = bob.take("BYE")
    assert bye.call_id == call.b.call_id
    bob.receive_in(call.b, bye)
    assert len(net.released) == 2


def test_cancel_reaches_the_callee_and_the_caller_gets_487():
    net = Net()
    alice, bob = net.phones("alice", "bob")
    invite = alice.invite(bob.ext)
    incoming = bob.take("INVITE")
    bob.respond(incoming, 180)
    cancel = Request("CANCEL", invite.uri_text, [
        ("Via", invite.header_all("Via")[0]), ("Max-Forwards", "70"), ("From", invite.header("From")),
        ("To", invite.header("To")), ("Call-ID", invite.call_id), ("CSeq", f"{invite.cseq.seq} CANCEL")])
    alice.send(cancel)
    assert alice.take(200).cseq.method == "CANCEL"
    assert alice.take(487)
    bob_cancel = bob.take("CANCEL")
    assert bob_cancel.call_id == incoming.call_id
    bob.respond(bob_cancel, 200)
    bob.respond(incoming, 487)
    assert bob.take("ACK")


def test_callee_failure_is_relayed_to_the_caller():
    net = Net()
    alice, bob = net.phones("alice", "bob")
    alice.invite(bob.ext)
    incoming = bob.take("INVITE")
    bob.respond(incoming, 486, "Busy Here")
    assert bob.take("ACK")
    assert alice.take(486).reason == "Busy Here"


def test_ring_timeout_cancels_and_the_caller_gets_480():
    net = Net(ring_timeout=5)
    alice, bob = net.phones("alice", "bob")
    alice.invite(bob.ext)
    incoming = bob.take("INVITE")
    bob.respond(incoming, 180)
    net.advance(6)
    bob.respond(bob.take("CANCEL"), 200)
    bob.respond(incoming, 487)
    assert alice.take(480)


def test_late_offer_the_callers_ack_brings_the_answer_to_the_callee():
    net = Net()
    alice, bob = net.phones("alice", "bob")
    invite = alice.invite(bob.ext, sdp=b"")
    incoming = bob.take("INVITE")
    assert not incoming.body
    bob.answer(incoming)                                   # bob's 200 carries the offer
    ok = alice.take(200)
    assert not bob.has("ACK")                              # waits for alice's answer
    dialog = alice.confirm_with_answer(invite, ok)
    ack = bob.take("ACK")
    assert Sdp.parse(ack.body).media[0].port != alice.rtp_port     # the relay's port
    assert net.media_path(ack.body) == ("127.0.0.1", alice.rtp_port)
    assert dialog


def test_hold_reinvite_is_relayed_and_answered_recvonly():
    net = Net()
    alice, bob = net.phones("alice", "bob")
    call = net.connect(alice, bob)
    alice.in_dialog(call.a, "INVITE", body=alice.sdp("sendonly"), content_type="application/sdp")
    alice.take(100)
    reinvite = bob.take("INVITE")
    assert reinvite.call_id == call.b.call_id
    assert Sdp.parse(reinvite.body).direction == "sendonly"
    bob.receive_in(call.b, reinvite, 200, body=Sdp.answer(reinvite.body, "127.0.0.1", bob.rtp_port))
    assert bob.take("ACK")
    ok = alice.take(200)
    assert Sdp.parse(ok.body).direction == "recvonly"
    # the relay follows the directions: alice (holding) is heard by bob, bob is not listened to
    assert net.media_path(call.ok.body) == ("127.0.0.1", bob.rtp_port)
    assert net.media_path(call.incoming.body) is None


def test_calls_over_tcp_use_tcp_towards_the_tcp_user():
    net = Net(tcp=("bob",))
    alice, bob = net.phones("alice", "bob")
    assert net.pbx.registrar.bindings["1002"].transport == "tcp"
    invite = alice.invite(bob.ext)
    assert bob.inbox[0].transport == "tcp"
    incoming = bob.take("INVITE")
    assert "SIP/2.0/TCP" in incoming.header("Via") and "transport=tcp" in incoming.header("Contact")
    assert alice.take(100) and invite
