"""An ALG or SBC between the suite and the DUT: found by the probe, and the DUT is not blamed for it.

The probe runs for real through the kernel's SIP ALG (lan — nat — wan network namespaces): an
agent behind the NAT probes a UA on the public side with the ALG on (headers rewritten: found),
with it off (a plain NAT: not a middlebox that rewrites) and on loopback (nothing in between).
"""

from __future__ import annotations

import asyncio

import pytest

from referee.agent import Agent, Evidence
from referee.agent.middlebox import probe
from referee.scenario.trace import Trace
from referee.scenario.verdict import FAIL, INCONCLUSIVE, downgrade_for_middlebox
from referee.wire import Topology, available
from referee.wire.natdut import netns_socket_factory, translate_ports

LAN, WAN = "198.18.0.2", "198.19.0.2"


def topology(alg: bool) -> Topology:
    ok, reason = available(alg=alg)
    if not ok:
        pytest.skip(reason)
    topo = Topology(alg=alg, prefix="rfmb", ipv6=False)
    translate_ports(topo, 41000, 41999)
    return topo


async def probe_through(topo: Topology):
    dut = await Agent.start("dut", host=WAN, port=5060, socket_factory=netns_socket_factory(topo.wan))
    suite = await Agent.start("suite", host=LAN, port=5060, socket_factory=netns_socket_factory(topo.lan))
    try:
        return await probe(suite, (WAN, 5060))
    finally:
        await suite.close()
        await dut.close()


@pytest.mark.nat
def test_the_probe_finds_the_kernel_sip_alg():
    topo = topology(alg=True)
    try:
        result = asyncio.run(probe_through(topo))
    finally:
        topo.teardown()
    assert result is not None and result.rewritten, result
    assert "rewritten" in result.detail and "198.19.0.1" in result.detail


@pytest.mark.nat
def test_a_nat_without_alg_is_not_a_rewriting_middlebox():
    topo = topology(alg=False)
    try:
        result = asyncio.run(probe_through(topo))
    finally:
        topo.teardown()
    assert result is not None and not result.rewritten, result
    assert "NAT" in result.detail


def test_nothing_between_two_loopback_agents():
    async def run():
        dut = await Agent.start("dut")
        suite = await Agent.start("suite")
        try:
            return await probe(suite, dut.address)
        finally:
            await suite.close()
            await dut.close()
    result = asyncio.run(run())
    assert result is not None and not result.rewritten


def _failed(part: str, raw: bytes = b"NOTIFY sip:a@b SIP/2.0\r\n\r\n") -> Trace:
    trace = Trace("X-001")
    trace.verdict, trace.failure = FAIL, "step 5: the final NOTIFY reports 500"
    trace.evidence = [Evidence("transferor", "NOTIFY", "198.19.0.2:5060", part, "2xx", "500", 1.0, raw)]
    return trace


def test_a_failure_the_middlebox_could_cause_becomes_inconclusive():
    trace = _failed("sipfrag")
    downgrade_for_middlebox(trace, "headers are rewritten between referee and the DUT")
    assert trace.verdict == INCONCLUSIVE and "middlebox" in trace.failure and "reports 500" in trace.failure
    absent = _failed("message", raw=b"")
    downgrade_for_middlebox(absent, "headers are rewritten")
    assert absent.verdict == INCONCLUSIVE          # a message that never came may have been lost on the way


def test_a_failure_on_a_header_no_middlebox_touches_stays_a_fail():
    trace = _failed("Event")
    downgrade_for_middlebox(trace, "headers are rewritten between referee and the DUT")
    assert trace.verdict == FAIL
    untouched = _failed("sipfrag")
    downgrade_for_middlebox(untouched, None)
    assert untouched.verdict == FAIL
