"""Fixtures of the NAT suite: one lan — nat — wan topology per SIP ALG mode for the whole session,
and `nat_play`, which runs a NAT flow against the DUT of the profile (launched in the topology).

Namespaces left behind by killed runs are removed when the session starts; the session's own
topologies are torn down when it ends, also after failures.
"""

from __future__ import annotations

import asyncio

import pytest

from nat_common import PUBLIC_PORTS, alg_label, play_nat
from referee.dut.applicability import skip_reason
from referee.dut.driver import DriverError
from referee.dut.kamailio import KamailioError, find_kamailio
from referee.wire import NetnsError, Topology, TopologyError, available, cleanup_leftovers
from referee.wire.natdut import NatPlacementError, placement_problem, translate_ports

from fixtures.plugin import redact, verdict_text
from fixtures.verdicts import DutFailure, HarnessFailure, InconclusiveOutcome

PREFIX = "rfnat"
MARKERS = {
    "rfc6314": "RFC 6314 (NAT traversal practices for client-server SIP)",
    "rfc5626": "RFC 5626 (SIP outbound: flows and keep-alives)",
}


def pytest_configure(config: pytest.Config) -> None:
    known = {line.split(":", 1)[0].strip() for line in config.getini("markers")}
    for name, text in MARKERS.items():
        if name not in known:
            config.addinivalue_line("markers", f"{name}: {text}")


@pytest.fixture(scope="session")
def nat_topology():
    """topology(alg) -> the session's Topology for that ALG mode (built on first use).

    Skips the test, with the reason, where namespaces cannot be built (no root, no nft, no
    kernel SIP ALG)."""
    cleanup_leftovers(PREFIX)
    built: dict[bool, Topology] = {}

    def get(alg: bool) -> Topology:
        if alg not in built:
            ok, why = available(alg)
            if not ok:
                pytest.skip(f"NAT topology ({alg_label(alg)}) unavailable: {why}")
            topo = Topology(alg=alg, prefix=PREFIX, ipv6=False)
            built[alg] = topo
            translate_ports(topo, *PUBLIC_PORTS)
        return built[alg]

    yield get
    errors = []
    for topo in built.values():
        try:
            topo.teardown()
        except TopologyError as exc:
            errors.append(str(exc))
    if errors:
        raise TopologyError("; ".join(errors))


def _kamailio_missing() -> str | None:
    try:
        find_kamailio()
    except KamailioError as exc:
        return f"no proxy to put in front of the DUT: {exc}"
    return None


@pytest.fixture
def nat_play(request, dut_profile, artifacts, record_property, nat_topology):
    """nat_play(flow_fn, alg): run a NAT flow against the profile's DUT; fail with the failed step."""

    def run(flow_fn, alg: bool):
        scenario = flow_fn.scenario
        reason = skip_reason(scenario, dut_profile) or placement_problem(dut_profile)
        if reason is None and dut_profile.transport != "udp":
            reason = f"the NAT suite runs over UDP; {dut_profile.name!r} uses {dut_profile.transport}"
        if reason is None and flow_fn.nat.proxy:
            reason = _kamailio_missing()
        if reason:
            pytest.skip(reason)
        test_id = f"{scenario.id}-{alg_label(alg)}"
        req = scenario.requirement
        for key, value in (("test_purpose", scenario.id), ("rfc", req.rfc), ("section", req.section),
                           ("level", req.level), ("role", scenario.dut_role), ("scenario", scenario.file.name),
                           ("dut", dut_profile.name), ("topology", f"nat, SIP ALG {'on' if alg else 'off'}")):
            record_property(key, value)
        known = dut_profile.known_failures.get(test_id) or dut_profile.known_failures.get(scenario.id)
        if known:
            # the check still runs and must fail; the verdict says this DUT is known to fail it
            record_property("known_failure", known)
            request.applymarker(pytest.mark.xfail(reason=f"known DUT deviation: {known}", strict=True,
                                                  raises=DutFailure))
        request.node.referee_purpose = scenario.id
        topo = nat_topology(alg)
        try:
            trace = asyncio.run(play_nat(flow_fn, topo, alg, dut_profile, artifacts))
        except (DriverError, NatPlacementError, NetnsError) as exc:
            raise HarnessFailure(redact(f"ERROR: DUT {dut_profile.name!r} could not be started in the wan "
                                        f"namespace: {exc}", dut_profile), pytrace=False) from None
        except KamailioError as exc:
            raise HarnessFailure(f"ERROR: the Kamailio proxy could not be started in the wan namespace: {exc}",
                                 pytrace=False) from None
        except Exception as exc:
            raise HarnessFailure(f"ERROR: {type(exc).__name__}: {exc}", pytrace=False) from None
        record_property("trace", str(artifacts / "trace.json"))
        record_property("pcap", trace.pcap)
        record_property("verdict", trace.verdict)
        request.node.referee_trace = trace
        if trace.failure:
            text = redact(verdict_text(trace), dut_profile)
            if trace.verdict == "fail":
                raise DutFailure(text, pytrace=False)
            if trace.verdict == "inconclusive":
                raise InconclusiveOutcome(text)
            raise HarnessFailure(text, pytrace=False)
        return trace

    return run
