"""The reference phone's fork server (referee/dut/refphone/zygote.py): every console it forks is
a process of its own that works, ends as a child would be seen to end, and never outlives the
connection or the zygote that owns it."""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import time

import pytest

from referee.dut.refphone.driver import RefPhoneDriver
from referee.dut.refphone.zygote import Zygote
from referee.wire.netns import call_in_netns
from tests.topologies import topology_or_skip

pytestmark = pytest.mark.timeout(60)
REPO = pathlib.Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))


def _gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split()[2] == "Z":     # ended, not yet reaped
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.02)
    return False


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


@pytest.fixture
def zygote():
    z = Zygote(ENV)
    try:
        yield z
    finally:
        z.close()


def _ready(console) -> str:
    console.expect_exact("\n", timeout=10)
    return console.before.strip()


def test_each_console_is_a_fresh_process_of_the_zygote(zygote):
    first, second = zygote.spawn(["--port", "0"]), zygote.spawn(["--port", "0"])
    try:
        lines = [_ready(first), _ready(second)]
        assert all(line.startswith("READY 127.0.0.1 ") for line in lines), lines
        assert lines[0] != lines[1]                            # two phones, two ports
        assert first.pid != second.pid
        assert _parent(first.pid) == _parent(second.pid) == zygote.proc.pid != os.getpid()
        assert os.getsid(first.pid) == first.pid               # a session of its own, as pexpect's
        first.sendline("calls")
        assert _ready(first) == "OK count=0 calls=''"
    finally:
        first.close()
        second.close()


def test_an_ended_console_reports_its_status(zygote):
    quitting, killed = zygote.spawn(["--port", "0"]), zygote.spawn(["--port", "0"])
    try:
        _ready(quitting), _ready(killed)
        quitting.sendline("quit")
        killed.kill(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (quitting.isalive() or killed.isalive()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not quitting.isalive() and quitting.exitstatus == 0 and quitting.signalstatus is None
        assert not killed.isalive() and killed.signalstatus == signal.SIGKILL
    finally:
        quitting.close()
        killed.close()


def test_a_console_let_go_of_is_killed(zygote):
    console = zygote.spawn(["--port", "0"])
    _ready(console)
    pid = console.pid
    console.close()
    assert _gone(pid)


def test_the_consoles_end_with_their_zygote():
    zygote = Zygote(ENV)
    console = zygote.spawn(["--port", "0"])
    _ready(console)
    zygote.close()
    assert _gone(console.pid) and _gone(zygote.proc.pid)
    console.close()


def test_a_bad_console_argument_is_reported_on_the_console(zygote):
    console = zygote.spawn(["--transport", "carrier-pigeon"])
    try:
        console.expect_exact("invalid choice", timeout=10)
        deadline = time.monotonic() + 5
        while console.isalive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert console.exitstatus == 2
    finally:
        console.close()


def test_the_driver_forks_its_console_and_drives_it():
    driver = RefPhoneDriver()
    driver.start()
    try:
        assert _parent(driver.pid) != os.getpid()            # forked by this process's zygote
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.bind(("127.0.0.1", 0))
            peer.settimeout(5)
            driver.dial(f"sip:peer@127.0.0.1:{peer.getsockname()[1]}")
            assert peer.recv(65535).startswith(b"INVITE sip:peer@127.0.0.1:")
    finally:
        driver.stop()
    assert not driver.alive()


def test_a_driver_started_in_another_namespace_listens_there():
    with topology_or_skip("rfzyg", alg=False) as topo:
        driver = RefPhoneDriver(host="198.19.0.2", port=5060)
        call_in_netns(topo.wan, driver.start)
        try:
            assert os.readlink(f"/proc/{driver.pid}/ns/net") != os.readlink("/proc/self/ns/net")
            assert driver.port == 5060
        finally:
            driver.stop()

