"""Dialogs (RFC 3261 §12) and REFER subscriptions (RFC 3515, RFC 4488) without any socket."""

import pytest

from referee.sip import Replaces, parse
from referee.stack import CSeqError, Dialog, DialogState, ReferNotifier, ReferSubscriber, SubState

INVITE = (b"INVITE sip:bob@198.18.0.2:5060 SIP/2.0\r\n"
          b"Via: SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bKinv1\r\n"
          b"Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\n"
          b"From: \"Alice\" <sip:alice@198.18.0.1>;tag=atag\r\nTo: <sip:bob@198.18.0.2>\r\n"
          b"Call-ID: dlg-1@198.18.0.1\r\nCSeq: 10 INVITE\r\nMax-Forwards: 70\r\n"
          b"Contact: <sip:alice@198.18.0.1:5060>\r\nContent-Length: 0\r\n\r\n")
OK = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bKinv1\r\n"
      b"Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\n"
      b"From: \"Alice\" <sip:alice@198.18.0.1>;tag=atag\r\nTo: <sip:bob@198.18.0.2>;tag=btag\r\n"
      b"Call-ID: dlg-1@198.18.0.1\r\nCSeq: 10 INVITE\r\nContact: <sip:bob@198.18.0.2:5070>\r\n"
      b"Content-Length: 0\r\n\r\n")


def in_dialog(method: str, cseq: int, contact: str | None = None, frm="btag", to="atag") -> bytes:
    lines = [f"{method} sip:alice@198.18.0.1:5060 SIP/2.0", "Via: SIP/2.0/UDP 198.18.0.2;branch=z9hG4bKx",
             f"From: <sip:bob@198.18.0.2>;tag={frm}", f"To: <sip:alice@198.18.0.1>;tag={to}",
             "Call-ID: dlg-1@198.18.0.1", f"CSeq: {cseq} {method}", "Max-Forwards: 70"]
    if contact:
        lines.append(f"Contact: <{contact}>")
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def test_uac_dialog_route_set_cseq_and_target():
    dialog = Dialog.from_uac(parse(INVITE), parse(OK))
    assert dialog.state is DialogState.CONFIRMED
    assert (dialog.call_id, dialog.local_tag, dialog.remote_tag) == ("dlg-1@198.18.0.1", "atag", "btag")
    assert dialog.route_set == ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]   # reversed for the UAC
    assert dialog.remote_target == "sip:bob@198.18.0.2:5070"
    refer = dialog.build_request("REFER")
    assert refer.uri_text == "sip:bob@198.18.0.2:5070"                            # loose routing
    assert refer.header_all("Route") == ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]
    assert refer.cseq.seq == 11 and refer.to.tag == "btag" and refer.from_.tag == "atag"
    assert dialog.next_hop().host == "p2.example"
    ack = dialog.build_request("ACK", cseq=10)
    assert ack.cseq.seq == 10 and dialog.local_seq == 11                           # ACK does not count


def test_uas_dialog_and_strict_router():
    req = parse(INVITE.replace(b"<sip:p1.example;lr>, <sip:p2.example;lr>", b"<sip:strict.example>"))
    dialog = Dialog.from_uas(req, "btag")
    assert dialog.route_set == ["<sip:strict.example>"] and dialog.remote_seq == 10
    bye = dialog.build_request("BYE")
    assert bye.uri_text == "sip:strict.example"                                   # strict: R-URI = route
    assert bye.header_all("Route") == ["<sip:alice@198.18.0.1:5060>"]             # remote target last


def test_remote_cseq_order_and_target_refresh():
    dialog = Dialog.from_uac(parse(INVITE), parse(OK))
    dialog.on_request(parse(in_dialog("NOTIFY", 5)))
    with pytest.raises(CSeqError):
        dialog.on_request(parse(in_dialog("NOTIFY", 5)))                         # not above the last
    dialog.on_request(parse(in_dialog("INVITE", 6, contact="sip:bob@198.18.0.9:5080")))
    assert dialog.remote_target == "sip:bob@198.18.0.9:5080"                      # re-INVITE refreshes
    dialog.on_request(parse(in_dialog("INFO", 7, contact="sip:ignored@198.18.0.8")))
    assert dialog.remote_target == "sip:bob@198.18.0.9:5080"                      # INFO does not
    assert dialog.matches(parse(in_dialog("BYE", 8)))
    assert not dialog.matches(parse(in_dialog("BYE", 8, frm="other")))
    dialog.on_request(parse(in_dialog("BYE", 8)))
    assert dialog.state is DialogState.TERMINATED


def test_replaces_value_names_the_dialog_as_the_peer_sees_it():
    dialog = Dialog.from_uac(parse(INVITE), parse(OK))
    r = Replaces.parse(dialog.replaces_value())
    # the peer (bob) matches to-tag against its local tag (btag), from-tag against its remote (atag)
    assert (r.call_id, r.to_tag, r.from_tag, r.early_only) == ("dlg-1@198.18.0.1", "btag", "atag", False)


def refer(cseq: int, refer_sub: str | None = None) -> bytes:
    extra = f"Refer-Sub: {refer_sub}\r\n" if refer_sub else ""
    return (f"REFER sip:bob@198.18.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 198.18.0.1;branch=z9hG4bKr{cseq}\r\n"
            f"From: <sip:alice@198.18.0.1>;tag=atag\r\nTo: <sip:bob@198.18.0.2>;tag=btag\r\n"
            f"Call-ID: dlg-1@198.18.0.1\r\nCSeq: {cseq} REFER\r\nMax-Forwards: 70\r\n"
            f"Refer-To: <sip:carol@198.18.0.3>\r\n{extra}Content-Length: 0\r\n\r\n").encode()


def notify_for(notifier: ReferNotifier, status: int, **override) -> bytes:
    headers, body = notifier.notify_headers(status)
    headers = dict(headers)
    headers.update(override)
    lines = ["NOTIFY sip:alice@198.18.0.1 SIP/2.0", "Via: SIP/2.0/UDP 198.18.0.2;branch=z9hG4bKn",
             "From: <sip:bob@198.18.0.2>;tag=btag", "To: <sip:alice@198.18.0.1>;tag=atag",
             "Call-ID: dlg-1@198.18.0.1", "CSeq: 3 NOTIFY", "Max-Forwards: 70"]
    lines += [f"{k}: {v}" for k, v in headers.items() if v is not None]
    return ("\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


def test_implicit_subscription_lifecycle_and_checks():
    sub = ReferSubscriber(parse(refer(11)))
    notifier = ReferNotifier(parse(refer(11)))
    assert sub.state is SubState.PENDING
    sub.on_response(parse(OK.replace(b"10 INVITE", b"11 REFER").replace(b"200 OK", b"202 Accepted")))
    assert sub.state is SubState.ACTIVE
    first = sub.on_notify(parse(notify_for(notifier, 100)))
    assert first.ok and (first.status, first.state) == (100, "active")
    final = sub.on_notify(parse(notify_for(notifier, 200)))
    assert final.ok and (final.status, final.state, final.reason) == (200, "terminated", "noresource")
    assert sub.state is SubState.TERMINATED and sub.statuses == [100, 200] and sub.final_status == 200


def test_notify_problems_are_named_with_their_rfc():
    sub = ReferSubscriber(parse(refer(11)))
    notifier = ReferNotifier(parse(refer(11)))
    bad = sub.on_notify(parse(notify_for(notifier, 100, **{"Event": None, "Subscription-State": None,
                                                           "Content-Type": "text/plain"})))
    text = " | ".join(bad.problems)
    assert "without Event header (RFC 6665" in text
    assert "without Subscription-State" in text
    assert "expected message/sipfrag (RFC 3515 §2.4.5)" in text


def test_second_refer_needs_event_id_and_refer_sub_false_means_no_subscription():
    second = ReferSubscriber(parse(refer(12)), first_in_dialog=False)
    notifier = ReferNotifier(parse(refer(12)), first_in_dialog=False)
    good = parse(notify_for(notifier, 100))
    assert good.event.id == "12" and second.event_id_ok(good)
    without_id = parse(notify_for(notifier, 100, Event="refer"))
    problems = second.on_notify(without_id).problems
    assert any("expected id=12 (RFC 3515 §2.4.6)" in p for p in problems)
    no_sub = ReferSubscriber(parse(refer(13, "false")))
    assert not ReferNotifier(parse(refer(13, "false"))).enabled
    no_sub.on_response(parse(OK.replace(b"10 INVITE", b"13 REFER").replace(b"200 OK", b"202 Accepted")))
    assert no_sub.state is SubState.TERMINATED
    assert any("Refer-Sub: false (RFC 4488" in p for p in no_sub.on_notify(good).problems)
