"""Agents over every transport: UDP/TCP/TLS, IPv4/IPv6, partial TCP reads, unframable streams."""

import asyncio
import socket

import pytest

from referee.agent import Agent
from referee.transport import make_test_certificates


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


async def call_and_refer(alice: Agent, bob: Agent) -> None:
    bob.auto_answer = 200
    call = await alice.call(bob.uri)
    xfer = await alice.refer(call, to="sip:carol@198.18.0.9")
    refer = await bob.expect("REFER", timeout=3)
    await bob.accept_refer(refer)
    assert (await xfer.final(3)).status == 202
    await bob.notify_transfer(refer.incoming.call, 200)
    await alice.expect("NOTIFY", sipfrag=200, state="terminated", timeout=3)
    assert (await alice.bye(call)).status == 200


def test_tls_with_certificates_made_at_run_time(tmp_path):
    certs = make_test_certificates(tmp_path)

    async def scenario():
        tls = dict(server_ssl=certs.server_context(), client_ssl=certs.client_context())
        alice = await Agent.start("alice", transport="tls", **tls)
        bob = await Agent.start("bob", transport="tls", **tls)
        try:
            assert bob.uri.endswith(";transport=tls")
            await call_and_refer(alice, bob)
            assert all(e.transport == "tls" for e in alice.log)
            assert alice.log[0].message.via[0].transport == "TLS"
        finally:
            await alice.close()
            await bob.close()
    run(scenario())


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback on this machine")
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_ipv6(transport):
    async def scenario():
        alice = await Agent.start("alice", host="::1", transport=transport)
        bob = await Agent.start("bob", host="::1", transport=transport)
        try:
            assert bob.uri.startswith("sip:bob@[::1]:")
            await call_and_refer(alice, bob)
            assert alice.log[0].message.via[0].host == "::1"
        finally:
            await alice.close()
            await bob.close()
    run(scenario())


def test_tcp_message_split_over_many_writes_is_reassembled():
    async def scenario():
        bob = await Agent.start("bob", transport="tcp")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", bob.port)
            body = b"v=0\r\n"
            msg = (b"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKsplit\r\n"
                   b"From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: split@x\r\n"
                   b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\n"
                   b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            for i in range(0, len(msg), 7):          # 7-byte segments
                writer.write(msg[i:i + 7])
                await writer.drain()
                await asyncio.sleep(0)
            writer.write(b"\r\n\r\n")                  # a keep-alive between messages is harmless
            got = await bob.expect("OPTIONS", timeout=3)
            assert got.message.body == body and got.message.call_id == "split@x"
            response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
            assert response.startswith(b"SIP/2.0 200 OK")
            writer.close()
        finally:
            await bob.close()
    run(scenario())


def test_tcp_stream_without_content_length_is_recorded_as_defect():
    async def scenario():
        bob = await Agent.start("bob", transport="tcp")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", bob.port)
            writer.write(b"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKx\r\n"
                         b"From: <sip:x@y>;tag=1\r\nTo: <sip:bob@y>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n")
            await writer.drain()
            for _ in range(100):
                if bob.defects:
                    break
                await asyncio.sleep(0.02)
            assert bob.defects and "Content-Length" in bob.defects[0].error
            writer.close()
        finally:
            await bob.close()
    run(scenario())


def test_sending_outside_loopback_and_test_ranges_is_refused():
    from referee.agent import ExpectationFailed
    from referee.transport import DestinationRefused

    async def scenario():
        alice = await Agent.start("alice")
        try:
            cr = await alice.request("OPTIONS", "sip:someone@192.0.2.10:5060")
            with pytest.raises(ExpectationFailed) as info:
                await cr.final(2)
            assert "refusing to send to 192.0.2.10:5060" in str(info.value)
            assert "--allow-target 192.0.2.10" in str(info.value)
            assert not [e for e in alice.log if e.direction == "sent"], "nothing may be logged as sent"
            with pytest.raises(DestinationRefused):
                await alice.send_raw(b"OPTIONS sip:x SIP/2.0\r\n\r\n", ("203.0.113.5", 5060))
            alice.policy.allow("192.0.2.10")          # explicitly allowed now
            assert alice.policy.allows("192.0.2.10") and not alice.policy.allows("192.0.2.11")
        finally:
            await alice.close()
    run(scenario())
