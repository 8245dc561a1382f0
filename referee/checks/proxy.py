"""Checks on what a proxy DUT forwards (RFC 3261 §16): the Record-Route set a response keeps, the
Route value a request loses, the body it leaves alone. Each compares what one agent sent, or
received first, with what another agent received through the proxy."""

from __future__ import annotations

from referee.scenario.library import Param, check
from referee.sip import NameAddr, SipParseError


def names_proxy(value: str, proxy: tuple[str, int]) -> bool:
    """A Route/Record-Route value whose URI is the proxy's address (port 5060 when none)."""
    try:
        uri = NameAddr.parse(value).uri
    except SipParseError:
        return False
    return getattr(uri, "host", "").strip("[]") == proxy[0] and (getattr(uri, "port", None) or 5060) == proxy[1]


def same_route_set(sent: list[str], got: list[str], proxy: tuple[str, int]) -> bool:
    """As many values, each equal, except that a value naming the proxy may be rewritten to
    another value naming the proxy (RFC 3261 §16.7 step 8)."""
    return len(got) == len(sent) and all(a == b or (names_proxy(a, proxy) and names_proxy(b, proxy))
                                         for a, b in zip(sent, got))


def _proxy(ctx) -> tuple[str, int]:
    host, port = ctx.flow.binding.dut.address
    return host, port


def _received_2xx(call):
    """The 2xx to the INVITE of `call` as the caller's agent received it (from its log, so that
    the evidence names who got it, from where and when)."""
    for entry in call.agent.log:
        msg = entry.message
        if (entry.direction == "received" and msg is not None and not msg.is_request
                and 200 <= msg.status < 300 and msg.call_id == call.call_id and msg.cseq.method == "INVITE"):
            return msg
    return call.response


@check("record_route_kept", """
    The caller's 2xx carries the Record-Route values the callee received in the INVITE.

    RFC 3261 §16.7: the callee copies the INVITE's Record-Route values into its 2xx (§12.1.1);
    the proxy forwarding that response removes only its own Via and no other header field value
    (step 9) and may only rewrite a Record-Route value it inserted itself (step 8). So the
    caller receives as many Record-Route values as the callee got, equal except for the proxy's.
    """, invite=Param("saved", "the INVITE as the callee received it", required=True),
    call=Param("call", "the call as the caller holds it (its 2xx is judged)", required=True))
async def record_route_kept(ctx, invite: str, call: str) -> None:
    sent = ctx.message(invite).values("Record-Route")
    response = _received_2xx(ctx.call(call))
    got = response.values("Record-Route")
    if not same_route_set(sent, got, _proxy(ctx)):
        raise ctx.violation(response, "Record-Route", f"{sent or 'none'} (as the callee received it)",
                            f"{got or 'none'}",
                            f"the callee received Record-Route {sent or 'none'} in the INVITE (and copied it "
                            f"into its 2xx) but the caller's 2xx has {got or 'none'}")
    ctx.note(response)


@check("route_removed", """
    A request sent along the route set arrives through the proxy without the proxy's Route value.

    RFC 3261 §16.4: a request whose first Route value names the proxy has that value removed by
    the proxy before it is forwarded. `sent` is the request as an agent sent it (Route: the
    proxy's Record-Route URI), `received` as the other end got it: it must come from the proxy
    and carry no Route value naming it.
    """, sent=Param("saved", "the request as the agent sent it", required=True),
    received=Param("saved", "the same request as the other agent received it", required=True))
async def route_removed(ctx, sent: str, received: str) -> None:
    proxy = _proxy(ctx)
    routes_sent = ctx.message(sent).values("Route")
    item = ctx.inbound(received)
    msg = item.message
    if tuple(item.source) != proxy:
        raise ctx.violation(msg, "source", f"from the proxy at {proxy[0]}:{proxy[1]}",
                            f"from {item.source[0]}:{item.source[1]}",
                            f"the {msg.method} came from {item.source[0]}:{item.source[1]}, not through the proxy "
                            f"at {proxy[0]}:{proxy[1]} (Route sent: {routes_sent or 'none'})")
    left = [r for r in msg.values("Route") if names_proxy(r, proxy)]
    if left:
        raise ctx.violation(msg, "Route", "no Route value naming the proxy", f"{left}",
                            f"the {msg.method} was forwarded with the proxy's own Route value still in it: "
                            f"{left} (sent with Route {routes_sent})")
    ctx.note(msg)


@check("body_unchanged", """
    The proxy forwards the request's body byte for byte.

    RFC 3261 §16.6 step 1: a proxy does not add to, modify or remove the message body of a
    request it forwards (a refer NOTIFY's message/sipfrag included).
    """, sent=Param("saved", "the request as the agent sent it", required=True),
    received=Param("saved", "the same request as the other agent received it", required=True))
async def body_unchanged(ctx, sent: str, received: str) -> None:
    body = ctx.message(sent).body
    msg = ctx.message(received)
    if msg.body != body:
        raise ctx.violation(msg, "body", repr(body), repr(msg.body),
                            f"the {msg.method} body was sent as {body!r} and arrived as {msg.body!r}")
    ctx.note(msg)
