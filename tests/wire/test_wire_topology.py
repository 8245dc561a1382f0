"""Building, using and removing the lan — nat — wan namespaces."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

import pytest

from referee.wire import Topology, TopologyError, available, cleanup_leftovers, list_netns


def _private_prefix(letter: str) -> str:
    """A prefix only this test process uses, so concurrent runs cannot clean our orphans."""
    n, digits = os.getpid(), ""
    while n:
        n, r = divmod(n, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[r] + digits
    return letter + digits


def test_available_reports_a_reason_or_true():
    ok, reason = available()
    assert isinstance(ok, bool) and isinstance(reason, str)
    assert ok or reason  # never "no" without saying why


@pytest.mark.nat
def _ours() -> set[str]:
    """This process's namespaces (other test processes build theirs meanwhile)."""
    return {n for n in list_netns() if f"-{os.getpid()}-" in n}


def test_build_and_teardown_leave_nothing(need_netns):
    before = _ours()
    topo = Topology(alg=True, prefix="rfw")
    try:
        names = set(topo.ns.values())
        assert len(names) == 3 and names <= set(list_netns())
        assert all(str(os.getpid()) in n for n in names)
        # routing and forwarding work: lan reaches wan through the nat
        out = topo.run_in("lan", ["ip", "route", "get", topo.wan_addr]).stdout
        assert f"via {topo.lan_gw}" in out
        rules = topo.run_in("nat", ["nft", "list", "ruleset"]).stdout
        assert 'type "sip" protocol udp' in rules and "masquerade" in rules
        assert topo.run_in("nat", ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"
    finally:
        topo.teardown()
    assert _ours() - before == set()
    assert not names & set(list_netns())
    topo.teardown()  # idempotent


@pytest.mark.nat
def test_without_alg_there_is_no_helper(topo_plain):
    rules = topo_plain.run_in("nat", ["nft", "list", "ruleset"]).stdout
    assert "ct helper" not in rules and "masquerade" in rules


@pytest.mark.nat
def test_leftovers_of_a_killed_run_are_removed_and_reported(need_netns, caplog):
    prefix = _private_prefix("k")
    script = ("import sys, time\n"
              "from referee.wire import Topology\n"
              f"t = Topology(alg=False, prefix={prefix!r})\n"
              "print(' '.join(t.ns.values()), flush=True)\n"
              "time.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # bounded by the child's own 30 s sleep
        orphan = set(line.split())
        assert len(orphan) == 3, f"child printed {line!r}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
    assert orphan <= set(list_netns())  # SIGKILL: no teardown ran
    live = Topology(alg=False, prefix=prefix)  # a live run of the same prefix is left alone
    try:
        assert set(live.removed_leftovers) == orphan  # building cleaned them first
        with caplog.at_level(logging.WARNING, logger="referee.wire"):
            assert cleanup_leftovers(prefix) == []
        assert set(live.ns.values()) <= set(list_netns())
        assert not orphan & set(list_netns())
    finally:
        live.teardown()


@pytest.mark.nat
def test_leftovers_warning_names_them(need_netns, caplog):
    prefix = _private_prefix("d")
    fake = f"{prefix}-999999999-1-1-lan"  # a pid that cannot exist
    subprocess.run(["ip", "netns", "add", fake], check=True, timeout=10)
    try:
        with caplog.at_level(logging.WARNING, logger="referee.wire"):
            removed = cleanup_leftovers(prefix)
    finally:
        subprocess.run(["ip", "netns", "del", fake], capture_output=True, timeout=10)
    assert fake in removed
    assert fake in caplog.text and "dead runs" in caplog.text


@pytest.mark.nat
def test_add_host_and_helpers(topo_plain):
    host = topo_plain.add_host("lan", "198.18.0.3")
    assert host.ns == topo_plain.lan and host.addr == "198.18.0.3"
    assert "198.18.0.3/24" in topo_plain.run_in("lan", ["ip", "-br", "addr"]).stdout
    wan_host = topo_plain.add_host("wan", "198.19.0.7")
    proc = topo_plain.popen_in("wan", ["ip", "-br", "addr"], stdout=subprocess.PIPE, text=True)
    try:
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait(timeout=5)
    assert "198.19.0.7/24" in out and wan_host.ns == topo_plain.wan
    if topo_plain.ipv6:
        topo_plain.add_host("lan", "2001:2::3")
        assert "2001:2::3/64" in topo_plain.run_in("lan", ["ip", "-br", "addr"]).stdout
    with pytest.raises(ValueError, match="side must be 'lan' or 'wan'"):
        topo_plain.add_host("nat", "198.18.0.9")
    with pytest.raises(ValueError, match="not a host address of the lan subnet 198.18.0.0/24"):
        topo_plain.add_host("lan", "198.19.0.9")
    with pytest.raises(ValueError, match="already used"):
        topo_plain.add_host("lan", "198.18.0.3")
    with pytest.raises(ValueError, match="not an IP address"):
        topo_plain.add_host("lan", "carol")
    with pytest.raises(ValueError, match="unknown namespace 'dmz'"):
        topo_plain.run_in("dmz", ["true"])
    with pytest.raises(TopologyError, match=r"command failed \(exit 1\).*false"):
        topo_plain.run_in("lan", ["false"])


def test_bad_prefix_is_refused():
    with pytest.raises(ValueError, match="prefix must be"):
        Topology(alg=False, prefix="Bad-Prefix")
