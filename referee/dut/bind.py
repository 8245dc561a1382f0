"""Bind a scenario's parties to agents and the DUT, the way the DUT's profile says.

The agents speak the session's transport (UDP, TCP or TLS); on TLS they present the session's
test certificate and do not verify the DUT's (see referee/dut/tls.py)."""

from __future__ import annotations

from referee.agent import Agent, ExpectationFailed
from referee.transport import DestinationPolicy
from referee.scenario import Binding, Scenario

from .session import DutSession

# PBX users are handed out to the agent parties in this order.
PARTY_ORDER = ("transferor", "transferee", "target")


async def bind(scenario: Scenario, session: DutSession, host: str = "127.0.0.1",
               policy: DestinationPolicy | None = None) -> Binding:
    """Start one Agent per agent party. Caller closes them with `close_binding`."""
    policy = policy or DestinationPolicy()
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
            if profile.kind == "pbx":
                if i >= len(users):
                    raise ExpectationFailed(f"scenario needs {len(ordered)} users, profile {profile.path} has "
                                            f"{len(users)}")
                user = users[i]
                creds = (user.username or user.extension, user.password) if user.password else None
                agent = await Agent.start(party.name, host=user.host, port=user.port, transport=transport,
                                          user=user.extension, outbound=session.address,
                                          domain=profile.domain or _hostport(session.address), credentials=creds,
                                          policy=policy, **tls)
                aliases[party.name] = session.user_aor(user.name)
            else:
                outbound = session.address if profile.kind == "proxy" else None
                agent = await Agent.start(party.name, host=host, port=0, transport=transport,
                                          user=options.pop("user", None), outbound=outbound, policy=policy,
                                          **tls)
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


async def close_binding(binding: Binding) -> None:
    for agent in binding.agents.values():
        await agent.close()


def _hostport(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
