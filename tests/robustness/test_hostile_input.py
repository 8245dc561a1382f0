"""Hostile peers: malformed, huge, duplicated or unexpected messages are findings, never crashes."""

import asyncio
import random
import socket

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from referee.agent import Agent

BASE = (b"NOTIFY sip:alice@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKh1\r\n"
        b"From: <sip:bob@127.0.0.1>;tag=b\r\nTo: <sip:alice@127.0.0.1>;tag=a\r\nCall-ID: hostile@x\r\n"
        b"CSeq: 7 NOTIFY\r\nMax-Forwards: 70\r\nEvent: refer\r\nSubscription-State: active\r\n"
        b"Content-Type: message/sipfrag\r\nContent-Length: 16\r\n\r\nSIP/2.0 200 OK\r\n")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def mutate(data: bytes, rnd: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rnd.randint(1, 6)):
        op = rnd.randrange(5)
        pos = rnd.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rnd.randrange(256)
        elif op == 1:
            data[pos:pos] = rnd.choice([b"\r\n", b"\x00", b":", b";", b"<", b">", b"%", b"\"", b"@", b",", b" "])
        elif op == 2:
            del data[pos:pos + rnd.randint(1, 20)]
        elif op == 3:
            data[pos:pos] = rnd.randbytes(rnd.randint(1, 30))
        else:
            data = data[:pos]
    return bytes(data)


def test_agent_survives_thousands_of_mutated_datagrams():
    async def scenario():
        alice = await Agent.start("alice")
        bob = await Agent.start("bob")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rnd = random.Random(4242)
            for i in range(3000):
                sock.sendto(mutate(BASE, rnd), alice.address)
                if i % 200 == 0:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)
            # still fully working afterwards
            assert (await bob.options(alice.uri)).status == 200
            assert alice.defects, "malformed input is recorded"
            internal = [f for f in alice.findings if "internal error" in f]
            assert not internal, internal[:3]
        finally:
            sock.close()
            await alice.close()
            await bob.close()
    run(scenario())


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=2000))
def test_random_bytes_never_break_the_receive_path(data):
    async def scenario():
        alice = await Agent.start("alice")
        try:
            from referee.transport import Received
            await alice._handle(Received(data, ("127.0.0.1", 5999), alice.address, "udp"))
            assert not [f for f in alice.findings if "internal error" in f]
        finally:
            await alice.close()
    asyncio.run(scenario())


def test_huge_message_many_headers_and_duplicates():
    async def scenario():
        alice = await Agent.start("alice")
        bob = await Agent.start("bob")
        try:
            bob.auto_options = 200
            # 64 KB+ cannot be one datagram: refused locally with a clear error, nothing sent
            many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 40) for i in range(1500))
            huge = BASE.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\n" + many)
            try:
                await alice.send_raw(huge, bob.address)
                raise AssertionError("a 70 KB datagram must be refused")
            except OSError as exc:
                assert "do not fit in one UDP datagram" in str(exc)
            # 60 KB with 1,300 headers is delivered and parsed
            big = BASE.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\n" + many[:60000 - len(BASE)]
                               .rsplit(b"\r\n", 1)[0] + b"\r\n")
            await alice.send_raw(big, bob.address)
            got = await bob.expect("NOTIFY", timeout=3)
            assert len(got.message.headers) > 1000
            # the same request three times: one transaction, answered once per copy (retransmission)
            opts = (b"OPTIONS sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bKdup\r\n"
                    b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: dup@x\r\nCSeq: 1 OPTIONS\r\n"
                    b"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n") % (alice.host.encode(), alice.port)
            for _ in range(3):
                await alice.send_raw(opts, bob.address)
                await asyncio.sleep(0.05)
            await bob.expect("OPTIONS", timeout=2)
            await asyncio.sleep(0.2)
            assert len([i for i in bob.inbox if i.message.call_id == "dup@x"]) == 1
            answers = [e for e in bob.log if e.direction == "sent" and e.message.call_id == "dup@x"]
            assert len(answers) == 3 and all(e.message.status == 200 for e in answers)
        finally:
            await alice.close()
            await bob.close()
    run(scenario())
