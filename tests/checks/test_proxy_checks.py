"""The proxy checks (referee/checks/proxy.py): route-set comparison and the forwarded NOTIFY."""

from referee.agent.objects import Inbound
from referee.checks.proxy import names_proxy, same_route_set
from referee.sip import parse

from checkctx import new_flow, run, violation

PROXY = ("127.0.0.1", 5060)


class _Dut:
    address = PROXY


def _flow():
    flow = new_flow()
    flow.binding.dut = _Dut()
    return flow


def test_names_proxy_defaults_the_port_to_5060():
    assert names_proxy("<sip:127.0.0.1;lr>", PROXY)
    assert names_proxy("<sip:127.0.0.1:5060;lr;ftag=x>", PROXY)
    assert not names_proxy("<sip:127.0.0.1:5070;lr>", PROXY)
    assert not names_proxy("not a uri <", PROXY)


def test_same_route_set_allows_only_the_proxys_own_value_to_change():
    sent = ["<sip:127.0.0.1;lr;ftag=a>", "<sip:198.18.0.5;lr>"]
    assert same_route_set(sent, ["<sip:127.0.0.1:5060;lr>", "<sip:198.18.0.5;lr>"], PROXY)
    assert not same_route_set(sent, sent[:1], PROXY)
    assert not same_route_set(sent, ["<sip:127.0.0.1;lr;ftag=a>", "<sip:198.18.0.6;lr>"], PROXY)


NOTIFY = """NOTIFY sip:transferor@127.0.0.1:5061 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK7
From: <sip:transferee@127.0.0.1:5062>;tag=b
To: <sip:transferor@127.0.0.1:5061>;tag=a
Call-ID: c1
CSeq: 5 NOTIFY
Event: refer
{route}Content-Type: message/sipfrag
Content-Length: {length}

{body}"""


def _notify(route: str = "", body: str = "SIP/2.0 200 OK\r\n"):
    head = NOTIFY.format(route=f"Route: {route}\n" if route else "", length=len(body), body="")
    return parse(head.replace("\n", "\r\n").encode() + body.encode())


def test_route_removed():
    flow = _flow()
    flow.saved["sent"] = _notify(route="<sip:127.0.0.1;lr>")
    flow.saved["in"] = Inbound(_notify(), PROXY, 0.0)
    run("route_removed", flow, sent="sent", received="in")
    flow.saved["in"] = Inbound(_notify(route="<sip:127.0.0.1;lr>"), PROXY, 0.0)
    exc = violation("route_removed", flow, sent="sent", received="in")
    assert exc.evidence[0].part == "Route"
    flow.saved["in"] = Inbound(_notify(), ("127.0.0.1", 5062), 0.0)
    exc = violation("route_removed", flow, sent="sent", received="in")
    assert exc.evidence[0].part == "source" and "127.0.0.1:5062" in exc.evidence[0].seen


def test_body_unchanged():
    flow = _flow()
    flow.saved["sent"] = _notify()
    flow.saved["in"] = Inbound(_notify(), PROXY, 0.0)
    run("body_unchanged", flow, sent="sent", received="in")
    flow.saved["in"] = Inbound(_notify(body="SIP/2.0 100 Trying\r\n"), PROXY, 0.0)
    exc = violation("body_unchanged", flow, sent="sent", received="in")
    assert exc.evidence[0].part == "body" and "100 Trying" in exc.evidence[0].seen
