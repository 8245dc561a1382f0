"""Is the DUT there? An OPTIONS probe (any response counts: even 4xx means something answered)."""

from __future__ import annotations

import asyncio
import pathlib
import tempfile

from referee.agent import Agent, ExpectationFailed
from referee.stack import TimerConfig
from referee.transport import DestinationPolicy, TransportError

from .driver import sip_uri
from .tls import agent_contexts, make_certificates


async def probe(address: tuple[str, int], transport: str = "udp", timeout: float = 2.0,
                policy: DestinationPolicy | None = None) -> bool:
    host = "::1" if ":" in address[0] else "127.0.0.1"
    with tempfile.TemporaryDirectory(prefix="referee-probe-") as scratch:
        tls = agent_contexts(make_certificates(pathlib.Path(scratch))) if transport == "tls" else {}
        agent = await Agent.start("probe", host=host, transport=transport, policy=policy,
                                  timers=TimerConfig(t1=0.25, t2=1.0), **tls)
        try:
            await agent.options(sip_uri(None, address[0], address[1], transport), dest=address, timeout=timeout)
            return True
        except (ExpectationFailed, TransportError):
            return False
        finally:
            await agent.close()


def probe_sync(address: tuple[str, int], transport: str = "udp", timeout: float = 2.0,
               policy: DestinationPolicy | None = None) -> bool:
    return asyncio.run(probe(address, transport, timeout, policy))
