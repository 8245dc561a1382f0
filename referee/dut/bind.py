"""Bind a scenario's parties to agents and the DUT, the way the DUT's profile says.

The agents speak the session's transport (UDP, TCP or TLS); on TLS they present the session's
test certificate and do not verify the DUT's (see referee/dut/tls.py)."""

from __future__ import annotations

import asyncio

from referee.agent import Agent, ExpectationFailed
from referee.transport import DestinationPolicy
from referee.transport.routing import local_address_for
from referee.scenario import Binding, Scenario

from .session import DutSession

# PBX users are handed out to the agent parties in this order.
PARTY_ORDER = ("transferor", "transferee", "target")


async def bind(scenario: Scenario, session: DutSession, host: str | None = None,
               policy: DestinationPolicy | None = None) -> Binding:
    """Start one Agent per agent party. Caller closes them with `close_binding`.

    Agents listen on `host`, by default the local address this machine uses to reach the DUT
    (loopback for a DUT on loopback), so what they put in Via and Contact is reachable from it.
    A PBX user listens on its profile's host and port (0: a free port, the PBX learns it when
    the user registers)."""
    policy = policy or DestinationPolicy()
    host = host or local_address_for(session.address[0])
    profile = session.profile
    agents: dict[str, Agent] = {}
    aliases: dict[str, str] = {}
    agent_parties = [p for p in scenario.parties.values() if p.kind == "agent"]
    ordered = sorted(agent_parties, key=lambda p: PARTY_ORDER.index(p.name) if p.name in PARTY_ORDER else 99)
    users = list(profile.users.values())
    transport = session.transport
    tls = session.agent_tls()      # TLS contexts when the session runs on TLS, else nothing
    try:
        for i, party in enumerate(ordered):
            options = dict(party.options)
            party_transport = options.pop("transport", None) or transport
            party_tls = session.agent_tls() if party_transport == "tls" and transport != "tls" else tls
            for nat_only in ("side", "addr"):        # placement in the NAT topology (fixtures/nat.py)
                options.pop(nat_only, None)
            if profile.kind == "pbx":
                if i >= len(users):
                    raise ExpectationFailed(f"scenario needs {len(ordered)} users, profile {profile.path} has "
                                            f"{len(users)}")
                user = users[i]
                creds = (user.username or user.extension, user.password) if user.password else None
                agent = await Agent.start(party.name, host=user.host, port=user.port, transport=party_transport,
                                          user=user.extension, outbound=session.address,
                                          domain=profile.domain or _hostport(session.address), credentials=creds,
                                          policy=policy, **party_tls)
                aliases[party.name] = session.user_aor(user.name)
            else:
                outbound = session.address if profile.kind == "proxy" else None
                agent = await Agent.start(party.name, host=host, port=0, transport=party_transport,
                                          user=options.pop("user", None), outbound=outbound, policy=policy,
                                          **party_tls)
            options.pop("user", None)
            for key, value in options.items():
                setattr(agent, key, value)
            agents[party.name] = agent
        if profile.kind == "pbx" and profile.register:
            for agent in agents.values():
                await agent.register(timeout=5.0)
    except BaseException:
        await close_binding(Binding(agents))
        raise
    return Binding(agents, session, scenario.dut_party, aliases)


HANG_UP_WAIT = 1.5     # seconds the DUT gets to answer the BYEs of a clean-up


async def close_binding(binding: Binding, hang_up: bool = False) -> None:
    """Close the agents. With `hang_up` (a DUT that lives on after the test: an external device),
    first end every call still up with BYE, so no call of this test occupies the device's lines
    in the next one."""
    if hang_up:
        await asyncio.gather(*(_hang_up(agent) for agent in binding.agents.values()), return_exceptions=True)
    for agent in binding.agents.values():
        await agent.close()


async def _hang_up(agent: Agent) -> None:
    requests = []
    for call in list(agent.calls):
        if call.is_up and call.dialog.state.value == "confirmed":
            requests.append(await agent.request("BYE", call=call))
            call.ended.set()
    if requests:
        await asyncio.wait([asyncio.ensure_future(asyncio.shield(cr.final_future)) for cr in requests],
                           timeout=HANG_UP_WAIT)


def _hostport(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
