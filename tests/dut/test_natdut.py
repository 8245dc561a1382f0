"""A DUT that binds every address (twinkle) inside the NAT topology: it must leave port 5060 of
its namespace to the agents and the proxy next to it, and the SIP ALG must cover its own port."""

from __future__ import annotations

import asyncio
import pathlib

import pytest

from referee.agent import Agent
from referee.dut import load_profile
from referee.wire.natdut import DUT_PORT_ALL_ADDRESSES, SIP_PORT, NatDut, netns_socket_factory
from tests.programs import require_program
from tests.topologies import topology_or_skip

REPO = pathlib.Path(__file__).resolve().parents[2]
WAN_DUT, WAN_NEIGHBOUR = "198.19.0.2", "198.19.0.3"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def topology():
    with topology_or_skip("rfdut", alg=True, hosts=(("wan", WAN_NEIGHBOUR),)) as topo:
        yield topo


def test_twinkle_leaves_5060_to_its_neighbours(topology):
    require_program("twinkle-console")
    dut = NatDut(load_profile(REPO / "duts" / "twinkle.toml"), topology.wan, WAN_DUT)
    assert dut.phone_address == (WAN_DUT, DUT_PORT_ALL_ADDRESSES)
    assert dut.uri_for("transferee") == f"sip:dut@{WAN_DUT}:{DUT_PORT_ALL_ADDRESSES}"
    dut.start()
    try:
        async def neighbour_and_call() -> int:
            # an agent on another address of the same namespace, on 5060, as the NAT suite places them
            agent = await Agent.start("target", host=WAN_NEIGHBOUR, port=SIP_PORT,
                                      socket_factory=netns_socket_factory(topology.wan))
            try:
                call = await agent.call(dut.uri_for("transferee"), dest=dut.address, timeout=5)
                await agent.bye(call)
                return agent.port
            finally:
                await agent.close()

        assert asyncio.run(neighbour_and_call()) == SIP_PORT
        assert dut.alive()
    finally:
        dut.stop()
    rules = topology.run_in("nat", ["nft", "list", "chain", "inet", "referee", "prerouting"]).stdout
    for proto in ("udp", "tcp"):
        assert f"{proto} dport {DUT_PORT_ALL_ADDRESSES} ct helper set" in rules, rules


def test_other_drivers_keep_5060(topology):
    dut = NatDut(load_profile(REPO / "duts" / "refphone.toml"), topology.wan, WAN_DUT)
    assert dut.phone_address == (WAN_DUT, SIP_PORT)
