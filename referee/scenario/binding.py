"""What a flow runs against: the suite's agents and the DUT, by party name."""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from referee.agent import Agent

Address = tuple[str, int]


class DutEndpoint(Protocol):
    """The DUT as the runner sees it (implemented by referee.dut)."""

    name: str
    kind: str              # phone | pbx | proxy
    address: Address       # where the suite sends calls and requests
    transport: str
    driver: Any            # a PhoneDriver when the suite can make the DUT act, else None

    def uri_for(self, role: str) -> str:
        """The URI the suite uses to reach the DUT in `role`, e.g. sip:transferee@127.0.0.1:5080."""


@dataclasses.dataclass
class Binding:
    agents: dict[str, Agent]                         # party name -> agent
    dut: DutEndpoint | None = None
    dut_party: str | None = None
    aliases: dict[str, str] = dataclasses.field(default_factory=dict)   # party -> AOR (PBX users)

    def agent(self, party: str) -> Agent:
        try:
            return self.agents[party]
        except KeyError:
            raise KeyError(f"party {party!r} is not bound to an agent (it is "
                           f"{'the DUT' if party == self.dut_party else 'unknown'})") from None

    def uri(self, party: str) -> str:
        """How other parties address `party` (its AOR through a PBX, else its contact URI)."""
        if party == self.dut_party and self.dut is not None:
            return self.dut.uri_for(party)
        if party in self.aliases:
            return self.aliases[party]
        return self.agent(party).uri

    def address(self, party: str) -> Address:
        if party == self.dut_party and self.dut is not None:
            return self.dut.address
        agent = self.agent(party)
        return agent.outbound or agent.address
