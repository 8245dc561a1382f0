"""Transaction state machines (RFC 3261 §17) driven by a fake clock: no sockets, no sleeping."""

from referee.sip import Request, Response, parse
from referee.stack import (Absorbed, ClientTransaction, FakeClock, PassUp, Send, ServerTransaction, State,
                           TimedOut, TimerConfig, TransactionLayer)

DEST = ("127.0.0.1", 5080)


def make_request(method="INVITE", branch="z9hG4bKabc", cseq=1):
    return Request(method, "sip:bob@127.0.0.1:5080", [
        ("Via", f"SIP/2.0/UDP 127.0.0.1:5060;branch={branch};rport"),
        ("Max-Forwards", "70"), ("From", "<sip:alice@127.0.0.1>;tag=a1"), ("To", "<sip:bob@127.0.0.1>"),
        ("Call-ID", "c1@127.0.0.1"), ("CSeq", f"{cseq} {method}")])


def make_response(request, status, to_tag="b1"):
    headers = [("Via", request.header("Via")), ("From", request.header("From")),
               ("To", request.header("To") + (f";tag={to_tag}" if status > 100 else "")),
               ("Call-ID", request.call_id), ("CSeq", request.header("CSeq"))]
    return parse(bytes(Response(status, "", headers)))


def sends(actions):
    return [a for a in actions if isinstance(a, Send)]


def retransmit_times(tx, clock, until):
    """Advance the fake clock in 1 ms steps; return the times at which the request was re-sent."""
    times = []
    ms = round(clock.now * 1000)
    while ms < until * 1000:
        ms += 1
        clock.now = ms / 1000      # integer milliseconds: no float drift in the comparison
        for action in tx.poll(clock.now):
            if isinstance(action, Send) and action.retransmission:
                times.append(round(clock.now, 3))
            if isinstance(action, TimedOut):
                times.append(("timeout", action.timer, round(clock.now, 3)))
    return times


def test_invite_client_timer_a_doubles_and_timer_b_times_out():
    clock = FakeClock()
    tx = ClientTransaction(make_request(), DEST, reliable=False, timers=TimerConfig(t1=0.5))
    assert len(sends(tx.start(clock.now))) == 1
    events = retransmit_times(tx, clock, 40)
    # Timer A: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 — then Timer B (64*T1 = 32 s) ends it
    assert events == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5, ("timeout", "B", 32.0)]
    assert tx.state is State.TERMINATED


def test_invite_client_provisional_stops_retransmissions():
    clock = FakeClock()
    req = make_request()
    tx = ClientTransaction(req, DEST, timers=TimerConfig())
    tx.start(0)
    clock.advance(0.6)
    tx.poll(clock.now)
    actions = tx.receive(make_response(req, 180), clock.now)
    assert [type(a) for a in actions] == [PassUp] and tx.state is State.PROCEEDING
    assert retransmit_times(tx, clock, 60) == []   # no A, no B in Proceeding


def test_invite_client_non2xx_generates_ack_and_absorbs_retransmission():
    req = make_request()
    tx = ClientTransaction(req, DEST)
    tx.start(0)
    resp = make_response(req, 486)
    actions = tx.receive(resp, 0.1)
    ack = sends(actions)[0].message
    assert ack.method == "ACK" and ack.cseq.method == "ACK" and ack.cseq.seq == 1
    assert ack.via[0].branch == "z9hG4bKabc" and ack.to.tag == "b1"
    assert any(isinstance(a, PassUp) for a in actions) and tx.state is State.COMPLETED
    again = tx.receive(resp, 0.2)     # retransmitted 486: ACK again, not passed up
    assert [type(a) for a in again] == [Send]
    clock = FakeClock(0.2)
    assert retransmit_times(tx, clock, 33) == []
    assert tx.state is State.TERMINATED   # timer D (32 s)


def test_invite_client_2xx_goes_to_accepted_and_passes_retransmissions_up():
    req = make_request()
    tx = ClientTransaction(req, DEST)
    tx.start(0)
    ok = make_response(req, 200)
    assert isinstance(tx.receive(ok, 0.1)[0], PassUp) and tx.state is State.ACCEPTED
    assert isinstance(tx.receive(ok, 0.6)[0], PassUp)      # RFC 6026: TU re-ACKs
    tx.poll(0.1 + 32.0)
    assert tx.state is State.TERMINATED                    # timer M


def test_non_invite_client_timer_e_caps_at_t2_and_timer_f():
    clock = FakeClock()
    tx = ClientTransaction(make_request("REFER", cseq=2), DEST, timers=TimerConfig(t1=0.5, t2=4.0))
    tx.start(0)
    events = retransmit_times(tx, clock, 33)
    assert events == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5, ("timeout", "F", 32.0)]


def test_non_invite_client_proceeding_retransmits_every_t2_and_k_absorbs():
    clock = FakeClock()
    req = make_request("NOTIFY")
    tx = ClientTransaction(req, DEST, timers=TimerConfig(t1=0.5, t2=4.0, t4=5.0))
    tx.start(0)
    clock.advance(0.2)
    tx.receive(make_response(req, 100), clock.now)
    events = retransmit_times(tx, clock, 9)
    assert events == [0.5, 4.5, 8.5]
    final = make_response(req, 200)
    assert isinstance(tx.receive(final, clock.now)[0], PassUp) and tx.state is State.COMPLETED
    assert tx.receive(final, clock.now + 1) == []
    tx.poll(clock.now + 5.0)
    assert tx.state is State.TERMINATED


def test_reliable_transport_has_no_retransmissions():
    clock = FakeClock()
    tx = ClientTransaction(make_request("REFER"), DEST, reliable=True)
    tx.start(0)
    assert retransmit_times(tx, clock, 33) == [("timeout", "F", 32.0)]


def test_invite_server_retransmits_error_response_until_ack():
    req = make_request()
    tx = ServerTransaction(req, ("127.0.0.1", 5060))
    assert sends(tx.respond(make_response(req, 486), 0))
    clock = FakeClock()
    events = retransmit_times(tx, clock, 4)
    assert events == [0.5, 1.5, 3.5]                       # timer G doubles
    ack = make_request("ACK")
    ack.set_header("CSeq", "1 ACK")
    # the ACK of a non-2xx is the transaction's own (absorbed, not a retransmission); a copy of it is
    assert tx.receive(ack, clock.now) == [Absorbed(ack, tx)] and tx.state is State.CONFIRMED
    assert tx.receive(ack, clock.now) == []
    tx.poll(clock.now + 5.0)
    assert tx.state is State.TERMINATED                    # timer I


def test_invite_server_timer_h_reports_missing_ack():
    req = make_request()
    tx = ServerTransaction(req, ("127.0.0.1", 5060), timers=TimerConfig(t1=0.5, t2=4.0))
    tx.respond(make_response(req, 603), 0)
    events = retransmit_times(tx, FakeClock(), 33)
    assert events[-1] == ("timeout", "H", 32.0)
    assert events[:-1] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]  # G capped at T2


def test_invite_server_2xx_retransmitted_until_ack_then_passed_up():
    req = make_request()
    tx = ServerTransaction(req, ("127.0.0.1", 5060))
    tx.respond(make_response(req, 200), 0)
    clock = FakeClock()
    assert retransmit_times(tx, clock, 2) == [0.5, 1.5]
    ack = make_request("ACK", branch="z9hG4bKother")
    ack.set_header("CSeq", "1 ACK")
    assert isinstance(tx.receive(ack, clock.now)[0], PassUp)
    assert retransmit_times(tx, clock, 10) == []


def test_non_invite_server_absorbs_request_retransmission():
    req = make_request("REFER")
    tx = ServerTransaction(req, ("127.0.0.1", 5060))
    assert tx.receive(req, 0.1) == []                       # nothing to resend yet
    tx.respond(make_response(req, 202), 0.2)
    resend = tx.receive(req, 0.7)
    assert len(resend) == 1 and resend[0].message.status == 202 and resend[0].retransmission
    tx.poll(0.2 + 32.0)
    assert tx.state is State.TERMINATED                    # timer J


def test_layer_matches_by_branch_and_method_and_creates_server_transactions():
    layer = TransactionLayer()
    req = make_request("INVITE", branch="z9hG4bK1")
    tx, actions = layer.send_request(req, DEST, 0)
    assert len(sends(actions)) == 1
    other = make_response(make_request("INVITE", branch="z9hG4bK2"), 200)
    stray = layer.receive(other, DEST, 0.1)
    assert isinstance(stray[0], PassUp) and stray[0].transaction is None
    mine = layer.receive(make_response(req, 180), DEST, 0.1)
    assert mine[0].transaction is tx
    incoming = make_request("REFER", branch="z9hG4bKin")
    first = layer.receive(incoming, DEST, 0.2)
    assert isinstance(first[0], PassUp) and isinstance(first[0].transaction, ServerTransaction)
    assert layer.receive(incoming, DEST, 0.3) == []          # retransmission absorbed
    assert layer.next_deadline() is None                     # INVITE in Proceeding, REFER unanswered
    server = first[0].transaction
    layer.respond(server, make_response(incoming, 202), 0.4)
    assert layer.next_deadline() == 0.4 + 32.0               # timer J
