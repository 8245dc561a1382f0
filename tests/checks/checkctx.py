"""Run a library check or action on hand-made messages: a Flow without a DUT, whose saved
messages and calls a test sets directly."""

from __future__ import annotations

import asyncio

from referee.agent import ExpectationFailed
from referee.scenario.binding import Binding
from referee.scenario.context import StepContext
from referee.scenario.flow import Flow
from referee.scenario.library import lookup
from referee.scenario.trace import StepResult
from referee.sip import parse


def msg(text: str):
    """A message from text (line ends become CRLF; a blank line ends the header)."""
    data = text.strip("\n").replace("\r\n", "\n").replace("\n", "\r\n")
    if "\r\n\r\n" not in data:
        data += "\r\n\r\n"
    return parse(data.encode())


def new_flow() -> Flow:
    return Flow(Binding(agents={}))


def run(name: str, flow: Flow | None = None, **args):
    """Run library step `name` with `args`; returns (flow, step result)."""
    flow = flow or new_flow()
    entry = lookup(name)
    assert entry is not None, f"no library step {name!r}"
    result = StepResult("1", 0, name, "passed", 0.0, 0.0)

    async def go():
        return await entry.fn(StepContext(flow, result, name), **args)

    asyncio.run(go())
    return flow, result


def violation(name: str, flow: Flow, **args) -> ExpectationFailed:
    """The violation a check raises (fails the test when it passes)."""
    try:
        run(name, flow, **args)
    except ExpectationFailed as exc:
        return exc
    raise AssertionError(f"{name} passed, expected a violation")
