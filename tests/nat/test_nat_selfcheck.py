"""Self-check of the NAT scenarios: NAT-TE-RPORT-001 (scenarios/nat/nat-te-rport-001.yaml)
fails a DUT that answers to the Via address instead of the source, and passes one that answers
to the source.

The DUTs are tests/nat/responder.py in its three modes, each run by `referee run -m nat -k
NAT-TE-RPORT-001` (both ALG modes) in a subprocess, all three at once. With the ALG on, the
kernel's SIP helper rewrites the Via to the NAT binding, which hides both faults: that run must
pass for every mode. A FAIL names the offending response as the wire showed it (interface,
frame in the pcap). Also checked here: the NAT controls of referee.wire.natdut on a real
topology (port translation, conntrack flush, UDP binding timeouts).
"""

from __future__ import annotations

import pathlib
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from referee.wire import Topology, available, call_in_netns
from referee.wire.natdut import conntrack_table, flush_conntrack, header_diff, translate_ports, udp_timeouts

REPO = pathlib.Path(__file__).resolve().parents[2]
RESPONDER = REPO / "tests" / "nat" / "responder.py"
PURPOSE = "NAT-TE-RPORT-001"

# reply-to mode -> expected verdict per ALG mode, and phrases the failure must contain
EXPECTED = {
    "source": {"alg-off": ("passed", ()), "alg-on": ("passed", ())},
    "received": {"alg-off": ("failed", ("went to 198.19.0.1:5060, expected 198.19.0.1:4",
                                        "wan0 (the public side of the NAT) received SIP/2.0 ",
                                        "of the test's capture")),
                 "alg-on": ("passed", ())},
    "via": {"alg-off": ("failed", ("no response to any of", "no response from the DUT on wan0")),
            "alg-on": ("passed", ())},
}

NETNS_OK, NETNS_WHY = available(alg=True)
needs_netns = pytest.mark.skipif(not NETNS_OK, reason=f"NAT topology: {NETNS_WHY}")
pytestmark = [pytest.mark.nat, needs_netns, pytest.mark.timeout(300)]


def responder_profile(directory: pathlib.Path, mode: str) -> pathlib.Path:
    launch = ["{python}", str(RESPONDER), "--host", "{host}", "--port", "{port}", "--reply-to", mode]
    path = directory / f"responder-{mode}.toml"
    path.write_text("\n".join([
        f'name = "NAT responder (reply-to {mode})"', 'kind = "phone"',
        "launch = [" + ", ".join(f'"{a}"' for a in launch) + "]",
        'roles = ["transferee"]', 'capabilities = ["transferee"]', ""]))
    return path


def read_junit(path: pathlib.Path) -> dict[str, tuple[str, str]]:
    """test id inside [...] -> (passed | failed | skipped, message)."""
    verdicts = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "")
        if "[" not in name:
            continue
        verdict, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                verdict = "skipped" if child.tag == "skipped" else "failed"
                message = (child.get("message", "") + "\n" + (child.text or "")).strip()
        verdicts[name[name.index("[") + 1:name.rindex("]")]] = (verdict, message)
    return verdicts


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[dict, str]]:
    """mode -> (verdicts, output) of one `referee run` against the responder in that mode."""
    base = tmp_path_factory.mktemp("nat-selfcheck")
    procs = {}
    for mode in EXPECTED:
        reports = base / mode
        argv = [sys.executable, "-m", "referee.cli", "run", "--dut", str(responder_profile(base, mode)),
                "--report-dir", str(reports), "-m", "nat", "-k", PURPOSE]
        procs[mode] = (subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True), reports)
    results = {}
    try:
        for mode, (proc, reports) in procs.items():
            output, _ = proc.communicate(timeout=240)
            junit = reports / "junit.xml"
            results[mode] = (read_junit(junit) if junit.exists() else {}, output)
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


@pytest.mark.parametrize("mode", list(EXPECTED))
def test_rport_verdicts(runs, mode):
    verdicts, output = runs[mode]
    for alg, (want, phrases) in EXPECTED[mode].items():
        test_id = f"{PURPOSE}-{alg}"
        assert test_id in verdicts, f"{test_id} did not run against reply-to={mode}:\n{output[-3000:]}"
        verdict, message = verdicts[test_id]
        assert verdict == want, f"reply-to={mode}, {alg}: {verdict}, expected {want}\n{message}\n{output[-2000:]}"
        for phrase in phrases:
            assert phrase in message, f"reply-to={mode}, {alg}: failure does not say {phrase!r}:\n{message}"


# -- the NAT controls ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def topo():
    t = Topology(alg=False, prefix="rfnc", ipv6=False)
    try:
        translate_ports(t, 40000, 40999)
        yield t
    finally:
        t.teardown()


def _udp(ns: str, addr: str, port: int) -> socket.socket:
    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, port))
        s.settimeout(2.0)
        return s
    return call_in_netns(ns, make)


def test_port_translation_and_flush(topo):
    lan, wan = _udp(topo.lan, topo.lan_addr, 5060), _udp(topo.wan, topo.wan_addr, 5060)
    try:
        lan.sendto(b"ping", (topo.wan_addr, 5060))
        _, source = wan.recvfrom(100)
        assert source[0] == topo.nat_wan_addr and 40000 <= source[1] <= 40999
        assert f"dport={source[1]}" in conntrack_table(topo)
        flush_conntrack(topo)
        assert f"dport={source[1]}" not in conntrack_table(topo)
    finally:
        lan.close()
        wan.close()


def test_udp_timeouts_are_set_and_restored(topo):
    def read() -> str:
        with open("/proc/sys/net/netfilter/nf_conntrack_udp_timeout") as f:
            return f.read().strip()

    before = call_in_netns(topo.nat, read)
    with udp_timeouts(topo, unreplied=1, replied=1):
        assert call_in_netns(topo.nat, read) == "1"
    assert call_in_netns(topo.nat, read) == before
    with pytest.raises(ValueError):
        with udp_timeouts(topo, unreplied=0, replied=1):
            pass


def test_header_diff_names_the_rewritten_headers():
    before = (b"REFER sip:b@198.19.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 198.18.0.2:5060;rport\r\n"
              b"Contact: <sip:a@198.18.0.2>\r\nRefer-To: <sip:c@198.18.0.3>\r\nContent-Length: 0\r\n\r\n")
    after = before.replace(b"UDP 198.18.0.2:5060", b"UDP 198.19.0.1:40001").replace(
        b"<sip:a@198.18.0.2>", b"<sip:a@198.19.0.1:40001>")
    changed, diff = header_diff(before, after, "lan0", "wan0")
    assert changed == ["Via", "Contact"]
    assert "-Contact: <sip:a@198.18.0.2>" in diff and "+Contact: <sip:a@198.19.0.1:40001>" in diff
    assert "Refer-To" not in [line[1:].split(":")[0] for line in diff.splitlines() if line[:1] in "+-"
                              and not line.startswith(("---", "+++"))]
