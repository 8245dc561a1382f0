"""What a library step (referee/scenario/library.py) works with: the flow, its own trace record,
and helpers to reach what earlier steps saved and to raise verdicts with their evidence."""

from __future__ import annotations

from referee.agent import Agent, Evidence, ExpectationFailed
from referee.agent.objects import Call, ClientRequest, Inbound
from referee.sip import Request, Response

from .trace import StepResult
from .verdict import HarnessError, Inconclusive


class StepContext:
    def __init__(self, flow, result: StepResult, name: str) -> None:
        self.flow = flow
        self.result = result
        self.name = name

    # -- what earlier steps left ------------------------------------------------------------
    def saved(self, name: str):
        try:
            return self.flow.saved[name]
        except KeyError:
            raise HarnessError(f"{self.name}: nothing saved as {name!r}") from None

    def message(self, name: str) -> Request | Response:
        """A saved message (received or sent) as a Request/Response."""
        item = self.saved(name)
        if isinstance(item, list):
            raise HarnessError(f"{self.name}: {name!r} is a list of messages, not one")
        return message_of(item)

    def messages(self, name: str) -> list[Request | Response]:
        """A saved list of messages (a `collect` step's), or a single one as a list."""
        item = self.saved(name)
        return [message_of(i) for i in (item if isinstance(item, list) else [item])]

    def inbound(self, name: str) -> Inbound:
        item = self.saved(name)
        if not isinstance(item, Inbound):
            raise HarnessError(f"{self.name}: {name!r} is not a received message")
        return item

    def call(self, name: str) -> Call:
        try:
            return self.flow.calls[name]
        except KeyError:
            raise HarnessError(f"{self.name}: no call {name!r}") from None

    def agent(self, party: str) -> Agent:
        return self.flow.binding.agent(party)

    def var(self, text: str | None) -> str | None:
        return self.flow.var(text)

    # -- recording and verdicts --------------------------------------------------------------
    def note(self, msg) -> None:
        """This step checked `msg` (the ladder shows the step number on it)."""
        self.flow._mark(self.result, message_of(msg))

    @property
    def detail(self) -> str:
        return self.result.detail

    @detail.setter
    def detail(self, text: str) -> None:
        self.result.detail = text

    def violation(self, msg, part: str, expected: str, seen: str, text: str | None = None) -> ExpectationFailed:
        """The DUT's message `msg` breaks the requirement (raise it: FAIL in the body)."""
        self.note(msg)
        return self.flow.violation(msg, part, expected, seen, text)

    def violations(self, items: list[tuple], text: str) -> ExpectationFailed:
        """Several messages break it: items are (msg, part, expected, seen)."""
        for item in items:
            self.note(item[0])
        return ExpectationFailed(text, [self.flow.evidence(*item) for item in items])

    def missing(self, party: str, expected: str, seen: str, text: str | None = None) -> ExpectationFailed:
        """A message the DUT was obliged to send did not come."""
        return ExpectationFailed(text or f"{party}: expected {expected}; {seen}", [Evidence(party, "", expected=expected,
                                                                                           seen=seen)])

    def inconclusive(self, text: str) -> Inconclusive:
        return Inconclusive(text)


def message_of(item) -> Request | Response:
    if isinstance(item, ClientRequest):
        return item.request
    if isinstance(item, Inbound):
        return item.message
    return item
