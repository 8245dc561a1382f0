"""The DUTs of the NAT topology started ahead of their tests (fixtures/nat_duts.py): each test
gets a started DUT no other test has used, on the address the running DUT does not hold, and a
used DUT is silenced at once (the next test's agents use the addresses it talked to)."""

from __future__ import annotations

import pathlib
import time

import pytest

from fixtures.nat_duts import WAN_DUTS, NatDuts
from referee.dut import BUILTIN_PROFILE, load_profile
from tests.topologies import topology_or_skip

REPO = pathlib.Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def topology():
    with topology_or_skip("rfpool", alg=False) as topo:
        yield topo


def _wait(condition, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_each_test_gets_a_fresh_dut_on_the_free_address(topology):
    duts = NatDuts(load_profile(BUILTIN_PROFILE), topology)
    try:
        first = duts.take()
        assert first.alive() and first.phone_address == (WAN_DUTS[0], 5060)
        second = duts.take()                         # started ahead while `first` was in use
        assert second.alive() and second.phone_address == (WAN_DUTS[1], 5060)
        assert second.driver.pid != first.driver.pid
        duts.retire(first)                           # SIGKILLed at once: it sends nothing more
        assert _wait(lambda: not first.alive(), 2.0)
        third = duts.take()                          # on the address `first` gave back
        assert third.phone_address == (WAN_DUTS[0], 5060) and third is not first and third.alive()
        duts.retire(second)
        duts.retire(third)
    finally:
        duts.close()
    assert _wait(lambda: not any(d.alive() for d in (first, second, third)))


def test_a_dut_that_binds_every_address_has_one_address(topology):
    twinkle = load_profile(REPO / "duts" / "twinkle.toml")
    assert NatDuts(twinkle, topology).addresses == WAN_DUTS[:1]


def test_a_dut_that_cannot_start_is_reported_and_its_address_freed(topology):
    import dataclasses
    broken = dataclasses.replace(load_profile(BUILTIN_PROFILE), user="not a user")   # refused by the phone
    duts = NatDuts(broken, topology)
    try:
        with pytest.raises(Exception, match="user"):
            duts.take()
        assert _wait(lambda: len(duts._free) + (duts._spare is not None) == len(WAN_DUTS))
    finally:
        duts.close()
