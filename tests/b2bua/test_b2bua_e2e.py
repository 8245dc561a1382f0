"""The B2BUA test PBX as a program (tests/faulty/b2bua/main.py) with referee agents as its users,
over loopback UDP and TCP: registration, a call with relayed RTP, transfers, clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import signal
import socket
import sys

import pytest

from referee.agent import Agent

MAIN = pathlib.Path(__file__).resolve().parents[1] / "faulty" / "b2bua" / "main.py"
NAMES = ("alice", "bob", "carol")

pytestmark = pytest.mark.timeout(60)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 45))


def write_profile(path: pathlib.Path, first_port: int, transport: str = "udp") -> pathlib.Path:
    lines = ['name = "b2bua e2e"', 'kind = "pbx"', 'address = "127.0.0.1:5999"', f'transport = "{transport}"',
             "register = true"]
    for i, name in enumerate(NAMES):
        lines += [f"[users.{name}]", f'extension = "100{i + 1}"', f"port = {first_port + i}",
                  f'password = "{name}-pw"']
    path.write_text("\n".join(lines) + "\n")
    return path


@contextlib.asynccontextmanager
async def pbx(profile: pathlib.Path, *options: str):
    """The PBX program on a free port: yields (address, output lines); SIGTERM at the end."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(MAIN), "--profile", str(profile), "--host", "127.0.0.1", "--port", "0", *options,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    lines: list[str] = []
    try:
        async with asyncio.timeout(10):
            while True:
                line = (await proc.stdout.readline()).decode()
                if not line:
                    raise AssertionError(f"the PBX exited before READY: {''.join(lines)}")
                lines.append(line)
                if line.startswith("READY"):
                    break
        port = int(lines[-1].split()[2])
        reader = asyncio.create_task(_collect(proc, lines))
        yield ("127.0.0.1", port), lines
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader, 2)


async def _collect(proc, lines: list[str]) -> None:
    while line := await proc.stdout.readline():
        lines.append(line.decode())


@contextlib.asynccontextmanager
async def users(address, first_port: int, transport: str = "udp"):
    agents = []
    try:
        for i, name in enumerate(NAMES):
            agent = await Agent.start(name, port=first_port + i, user=f"100{i + 1}", transport=transport,
                                      outbound=address, domain=f"{address[0]}:{address[1]}",
                                      credentials=(f"100{i + 1}", f"{name}-pw"))
            agents.append(agent)
            await agent.register()
        yield agents
    finally:
        for agent in agents:
            await agent.close()


async def rtp_arrives(agent: Agent, timeout: float = 2.0) -> bytes:
    return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(agent._rtp, 2048), timeout)


def test_call_with_relayed_media_and_blind_transfer(tmp_path):
    async def scenario():
        async with pbx(write_profile(tmp_path / "p.toml", 25371)) as (address, log):
            async with users(address, 25371) as (alice, bob, carol):
                bob.auto_answer = 200
                carol.auto_answer = 200
                call = await alice.call(f"sip:1002@{address[0]}:{address[1]}")
                bob_call = bob.calls[0]
                assert bob_call.call_id != call.call_id               # separate legs
                alice.send_rtp(call, packets=3)
                assert (await rtp_arrives(bob))[:1] == b"\x80"         # through the relay
                xfer = await alice.refer(call, to=f"sip:1003@{address[0]}:{address[1]}")
                assert (await xfer.final(3)).status == 202
                await alice.expect("NOTIFY", timeout=3, call=call, sipfrag="100")
                await alice.expect("NOTIFY", timeout=3, call=call, sipfrag="200")
                await alice.expect("BYE", timeout=3, call=call)
                invite = await carol.expect("INVITE", timeout=3)
                assert invite.message.referred_by.uri.user == "1001"
                bob.send_rtp(bob_call, packets=3)
                assert await rtp_arrives(carol)                          # bob now talks to carol
                assert not alice.findings, alice.findings
            assert any("transfer" in line and "succeeded" in line for line in log)
    run(scenario())


def test_attended_transfer_over_tcp(tmp_path):
    async def scenario():
        async with pbx(write_profile(tmp_path / "p.toml", 25381, "tcp")) as (address, log):
            async with users(address, 25381, "tcp") as (alice, bob, carol):
                bob.auto_answer = 200
                carol.auto_answer = 200
                pbx_uri = f"{address[0]}:{address[1]};transport=tcp"
                call1 = await alice.call(f"sip:1002@{pbx_uri}")
                call2 = await alice.call(f"sip:1003@{pbx_uri}")
                xfer = await alice.refer(call1, to=f"sip:1003@{pbx_uri}", replaces=call2)
                assert (await xfer.final(3)).status == 202
                notify = await alice.expect("NOTIFY", timeout=3, call=call1, sipfrag="200")
                assert notify.message.via[0].transport == "TCP"
                await alice.expect("BYE", timeout=3, call=call2)
                await alice.expect("BYE", timeout=3, call=call1)
                await carol.expect_none("BYE", within=0.5)
    run(scenario())


def test_survives_garbage_and_stops_on_sigterm(tmp_path):
    async def scenario():
        async with pbx(write_profile(tmp_path / "p.toml", 25391)) as (address, log):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                sock.sendto(b"\x00garbage\r\n\r\n", address)
                sock.sendto(b"INVITE sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n", address)
            finally:
                sock.close()
            probe = await Agent.start("probe")
            try:
                assert (await probe.options(f"sip:{address[0]}:{address[1]}", dest=address)).status == 200
            finally:
                await probe.close()
        assert log[-1].strip() == "stopped"
        assert any("dropped" in line for line in log)
    run(scenario())
