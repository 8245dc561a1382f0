"""Run a loaded Scenario with a Flow."""

from __future__ import annotations

import dataclasses

from .binding import Binding
from .flow import Flow, StepFailed
from .model import (AnyOrderStep, CallStep, CollectStep, DutStep, ExpectNoneStep, ExpectStep, LibraryCall,
                    NotifyStep, ReplyStep, Scenario, SendStep, SetStep, WaitStep)
from .trace import Trace


def _expect_args(step: ExpectStep) -> dict:
    return dict(what=step.what, at=step.at, call=step.call, response_to=step.response_to, headers=step.headers,
                sipfrag=step.sipfrag, state=step.state, timeout=step.timeout, optional=step.optional,
                save=step.save, reply=step.reply, reply_headers=step.reply_headers, reply_body=step.reply_body,
                reply_content_type=step.reply_content_type, answer=step.answer, line=step.line,
                requirement=step.requirement, if_absent=step.if_absent)


async def run_steps(flow: Flow, scenario: Scenario) -> None:
    """Preamble and body (a failure raises StepFailed), then the postamble in any case."""
    main = [s for s in scenario.steps if s.phase != "postamble"]
    try:
        for step in main:
            flow.phase = step.phase
            await run_step(flow, step)
    except StepFailed:
        await run_postamble(flow, scenario)
        raise
    await run_postamble(flow, scenario)


async def run_postamble(flow: Flow, scenario: Scenario) -> None:
    """Clean-up steps: each is tried; one that does not hold is a finding, never a verdict."""
    flow.phase = "postamble"
    for step in scenario.steps:
        if step.phase != "postamble":
            continue
        try:
            await run_step(flow, step)
        except StepFailed as exc:
            flow.trace.findings.append(f"postamble: {exc}")


async def run_step(flow: Flow, step) -> None:
    common = dict(line=step.line, index=step.index)
    if isinstance(step, CallStep):
        await flow.call(step.name, step.caller, step.callee, step.headers, step.expect, step.timeout,
                        step.sdp, requirement=step.requirement, wait_answer=step.wait_answer, **common)
    elif isinstance(step, SendStep):
        await flow.send(step.method, step.sender, step.call, step.to, step.uri, step.headers, step.body,
                        step.content_type, step.save, step.raw, requirement=step.requirement, **common)
    elif isinstance(step, ExpectStep):
        args = _expect_args(step)
        await flow.expect(**args, index=step.index)
    elif isinstance(step, ExpectNoneStep):
        await flow.expect_none(step.what, step.at, step.within, step.call, step.headers,
                               requirement=step.requirement, **common)
    elif isinstance(step, ReplyStep):
        await flow.reply(step.status, step.at, step.to, step.headers, step.body, step.content_type,
                         requirement=step.requirement, save=step.save, **common)
    elif isinstance(step, AnyOrderStep):
        await flow.any_order([_expect_args(s) for s in step.steps], requirement=step.requirement, **common)
    elif isinstance(step, DutStep):
        await flow.dut(step.action, dict(step.args), step.timeout, step.save, requirement=step.requirement,
                       **common)
    elif isinstance(step, WaitStep):
        await flow.wait(step.seconds, **common)
    elif isinstance(step, NotifyStep):
        await flow.notify(step.status, step.sender, step.refer, step.final, step.expect, step.timeout, step.headers,
                          step.save, requirement=step.requirement, **common)
    elif isinstance(step, CollectStep):
        await flow.collect(step.what, step.at, step.call, step.until, step.timeout, step.first_timeout, step.max,
                           step.save, requirement=step.requirement, if_absent=step.if_absent, **common)
    elif isinstance(step, SetStep):
        await flow.set_options(step.party, step.options, **common)
    elif isinstance(step, LibraryCall):
        await flow.library_call(step.kind, step.name, step.args, requirement=step.requirement, **common)
    else:   # pragma: no cover - the loader only builds the kinds above
        raise TypeError(f"unknown step {step!r}")


async def run_scenario(scenario: Scenario, binding: Binding, source: str | None = None) -> Trace:
    """Run every step; the returned Trace has .failure set (and the failing step marked) on failure."""
    flow = Flow(binding, scenario.id, source or scenario.file.name)
    try:
        await run_steps(flow, scenario)
    except StepFailed as exc:
        return flow.finish(exc)
    return flow.finish(None)
