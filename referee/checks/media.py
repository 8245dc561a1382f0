"""Checks on the media (RTP) the DUT sends, judged on the wire: a capture on the agents' media
ports for a while, then who received how many packets."""

from __future__ import annotations

import asyncio

from referee.agent import Evidence, ExpectationFailed
from referee.scenario.library import Param, check


@check("media_only_to", """
    RTP reaches one agent's media port and none reaches another's, for a while.

    The DUT's media goes to `to` (at least `min_packets` packets) and not to `not_to`.
    After a transfer and the BYE of the original call (RFC 3261 §15: a BYE ends the session of
    its dialog) the transferee's media is with the target, no longer with the transferor.
    Captured on the loopback interface after `settle` seconds (media still in flight from
    before the step), for `window` seconds.
    """, to=Param("party", "the agent that must receive media", required=True),
    not_to=Param("party", "the agent that must receive none", required=True),
    window=Param("number", "how long the media is observed, in seconds", default=1.5),
    settle=Param("number", "a pause before observing, in seconds", default=0.3),
    min_packets=Param("integer", "the fewest packets `to` must receive within the window", default=3))
async def media_only_to(ctx, to: str, not_to: str, window: float = 1.5, settle: float = 0.3,
                        min_packets: int = 3) -> None:
    from referee.wire import Capture
    wanted, unwanted = ctx.agent(to), ctx.agent(not_to)
    await asyncio.sleep(settle)
    capture = Capture("lo", ports=[wanted.rtp_port, unwanted.rtp_port])
    await asyncio.to_thread(capture.start)
    try:
        await asyncio.sleep(window)
    finally:
        await asyncio.to_thread(capture.stop)
    judge(ctx, capture.segments(), (to, wanted.host, wanted.rtp_port), (not_to, unwanted.host, unwanted.rtp_port),
          window, min_packets)


def judge(ctx, segments, to: tuple[str, str, int], not_to: tuple[str, str, int], window: float,
          min_packets: int) -> None:
    """The verdict on captured segments: `to` and `not_to` are (party, host, media port)."""
    (party, host, port), (other, _, other_port) = to, not_to
    udp = [s for s in segments if s.transport == "UDP"]
    to_wanted = [s for s in udp if s.dport == port]
    to_unwanted = [s for s in udp if s.dport == other_port]
    ctx.detail = f"{len(to_wanted)} packets to the {party}, {len(to_unwanted)} to the {other}"
    if len(to_wanted) < min_packets:
        raise ctx.missing(party, f"at least {min_packets} RTP packets to {host}:{port} within {window:g} s",
                          f"{len(to_wanted)} packets",
                          f"no media to the {party}'s {host}:{port} within {window:g} s ({len(to_wanted)} packets)")
    if to_unwanted:
        first = to_unwanted[0]
        packet = f"RTP to {first.dst}:{first.dport} ({len(first.payload)} bytes)"
        raise ExpectationFailed(
            f"{len(to_unwanted)} media packets still sent to the {other} ({first.src}:{first.sport} -> "
            f"{first.dst}:{first.dport}) within {window:g} s",
            [Evidence(other, packet, f"{first.src}:{first.sport}", "media", f"no RTP to the {other}",
                      f"{len(to_unwanted)} packets in {window:g} s", first.time, first.payload)])
