"""The runner API: one Flow object runs steps against a Binding and records a Trace.

YAML scenarios are turned into calls of these methods (`run_scenario`); Python flows in
suites/ call them directly. A failed step raises StepFailed naming the step, what was
expected within which time, and what arrived instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import sys
import time

from referee.agent import Agent, Evidence, ExpectationFailed, evidence_of
from referee.agent.objects import Call, ClientRequest, Inbound
from referee.sip import Request, Response

from .binding import Binding
from .trace import StepResult, Trace, TraceMessage
from .verdict import ERROR, FAIL, INCONCLUSIVE, PASS, PHASES, HarnessError, Inconclusive, classify

_VAR = re.compile(r"\{([A-Za-z_][\w-]*)\.([\w-]+)\}")


class StepFailed(AssertionError):
    """A flow step did not hold. str() is the full message for the report.

    `verdict` is what it means for the test (referee.scenario.verdict: fail, inconclusive, error;
    None for a postamble step whose failure leaves the verdict as it was); `evidence` the
    messages that show it (referee.agent.Evidence).
    """

    def __init__(self, where: str, message: str, step: StepResult | None = None, verdict: str | None = FAIL,
                 evidence: list | None = None, phase: str = "body") -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message
        self.step = step
        self.verdict = verdict
        self.evidence = list(evidence or [])
        self.phase = phase


class Flow:
    def __init__(self, binding: Binding, scenario_id: str = "", source: str = "",
                 source_file: str | None = None) -> None:
        self.binding = binding
        self.source = source          # file shown in messages (scenario file, or the flow's module)
        self.source_file = source_file    # a Python flow's file: its line numbers are found at run time
        self.trace = Trace(scenario_id)
        self.calls: dict[str, Call] = {}
        self.saved: dict[str, Request | Response | ClientRequest | Inbound] = {}
        self._counter = 0
        self._matched: dict[int, str] = {}      # id(message) -> step index
        self._current = ""
        self.phase = "body"           # the phase steps run in now (see `in_phase`)

    @contextlib.contextmanager
    def in_phase(self, phase: str):
        """Run the steps inside as the preamble, body or postamble of the test purpose."""
        if phase not in PHASES:
            raise ValueError(f"phase {phase!r} is not one of {', '.join(PHASES)}")
        before, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.phase = before

    # -- step bookkeeping -------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def step(self, description: str, line: int = 0, index: str | None = None,
                   requirement: str | None = None):
        if index is None:
            self._counter += 1
            index = str(self._counter)
        if not line and self.source_file:
            line = self._caller_line()
        result = StepResult(index, line, description, "passed", time.time(), 0.0, requirement, phase=self.phase)
        self.trace.steps.append(result)
        self._current = index
        where = f"{self.source}:{line}: step {index}" if self.source else f"step {index}"
        try:
            yield result
        except StepFailed:
            result.status, result.ended = "failed", time.time()
            raise
        except Exception as exc:      # noqa: BLE001 - every failure of a step becomes a verdict
            verdict = classify(exc, self.phase)
            result.status, result.ended = "failed", time.time()
            if isinstance(exc, AssertionError) or verdict == INCONCLUSIVE:
                text = str(exc)
            else:
                # not the DUT's doing: name the exception and where in referee it came from
                text = f"{type(exc).__name__}: {exc}{_origin(exc)}"
            result.detail = text
            raise StepFailed(f"{where} ({description})", text, result, verdict,
                             getattr(exc, "evidence", None), self.phase) from None
        else:
            result.ended = time.time()

    def _caller_line(self) -> int:
        """The line of the Python flow that is running this step (awaiting coroutines chain up)."""
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename == self.source_file:
                return frame.f_lineno
            frame = frame.f_back
        return 0

    def _mark(self, result: StepResult, msg: Request | Response) -> None:
        self._matched[id(msg)] = result.index

    # -- variables ---------------------------------------------------------------------------
    def var(self, text: str | None) -> str | None:
        """Substitute {party.uri}, {call1.replaces}, {saved.Header-Name} ... in `text`."""
        if text is None:
            return None
        return _VAR.sub(lambda m: self._value(m.group(1), m.group(2)), str(text))

    def _value(self, root: str, attr: str) -> str:
        if root in self.calls:
            call = self.calls[root]
            if attr == "replaces":
                return call.replaces
            if attr == "replaces_escaped":
                return call.replaces_escaped
            if attr in ("local_tag", "remote_tag"):
                return getattr(call.dialog, attr)
            if attr == "target_dialog":
                # RFC 4538: the tags as the recipient of the request sees the dialog
                return f"{call.call_id};local-tag={call.dialog.remote_tag};remote-tag={call.dialog.local_tag}"
            return str(getattr(call, attr))
        if root in self.saved and not isinstance(self.saved[root], (Request, Response, ClientRequest, Inbound)):
            saved = self.saved[root]          # a DUT event (its fields) or a DUT call handle
            fields = getattr(saved, "fields", None)
            if fields is not None:
                if attr not in fields:
                    raise KeyError(f"saved DUT event {root!r} has no field {attr!r} (has: {', '.join(fields)})")
                return str(fields[attr])
            return str(saved)
        if root in self.saved:
            msg = _message_of(self.saved[root])
            if attr == "status" and isinstance(msg, Response):
                return str(msg.status)
            if attr == "method" and isinstance(msg, Request):
                return msg.method
            if attr == "cseq":
                return str(msg.cseq.seq)
            value = msg.header(attr.replace("_", "-"))
            if value is None:
                raise KeyError(f"saved message {root!r} has no {attr} header")
            return value
        b = self.binding
        if attr in ("uri", "aor", "contact"):
            uri = b.uri(root)
            return f"<{uri}>" if attr == "contact" else uri
        if root == b.dut_party and b.dut is not None:
            host, port = b.dut.address
            return {"host": host, "port": str(port), "hostport": f"{host}:{port}", "user": root}[attr]
        agent = b.agent(root)
        return {"host": agent.host, "port": str(agent.port), "hostport": agent.hostport, "user": agent.user}[attr]

    def _headers(self, headers: dict | list | None) -> dict | list:
        """Header values with variables filled in: a mapping, or (name, value) pairs in order."""
        if isinstance(headers, list):
            return [(k, self.var(str(v))) for k, v in headers if v is not None]
        return {k: (None if v is None else self.var(str(v))) for k, v in (headers or {}).items()}

    def _matchers(self, headers: dict | None) -> dict:
        out = {}
        for name, cond in (headers or {}).items():
            if isinstance(cond, dict):
                out[name] = {op: self.var(v) if isinstance(v, str) else v for op, v in cond.items()}
            else:
                out[name] = None if cond is None else self.var(str(cond))
        return out

    # -- steps -------------------------------------------------------------------------------
    async def call(self, name: str, caller: str, callee: str, headers: dict | None = None,
                   expect: str = "2xx", timeout: float = 10.0, sdp: bool = True, line: int = 0,
                   index: str | None = None, requirement: str | None = None,
                   wait_answer: bool = True) -> Call | None:
        """Establish a call (INVITE/2xx/ACK). The DUT as caller is made to dial by its driver. With
        wait_answer false the INVITE goes out and the flow goes on (later steps judge its fate);
        its ClientRequest is saved under `name`."""
        async with self.step(f"call {name}: {caller} calls {callee}", line, index, requirement) as result:
            if caller == self.binding.dut_party:
                call = await self._dut_calls(callee, timeout, result)
            else:
                agent = self.binding.agent(caller)
                cr = await agent.invite(self.binding.uri(callee), self._headers(headers), sdp,
                                        dest=self._dest(callee, agent))
                self._mark(result, cr.request)
                if not wait_answer:
                    self.saved[name] = cr
                    return None
                final = await cr.final(timeout)
                self._mark(result, final)
                from referee.agent import status_matches
                if not status_matches(expect, final.status):
                    raise ExpectationFailed(f"INVITE answered {final.status} {final.reason}, expected {expect}")
                call = cr.call
                if call is None:
                    return None
            self.calls[name] = call
            return call

    async def _dut_calls(self, callee: str, timeout: float, result: StepResult) -> Call:
        driver = self._driver()
        agent = self.binding.agent(callee)
        await asyncio.to_thread(driver.dial, self.binding.uri(callee))
        inv = await agent.expect("INVITE", timeout=timeout)
        self._mark(result, inv.message)
        call = await agent.answer(inv)
        await agent.expect("ACK", timeout=timeout, call=call)
        return call

    def _dest(self, callee: str, agent: Agent):
        if callee == self.binding.dut_party and self.binding.dut is not None:
            return self.binding.dut.address
        return agent.outbound or self.binding.address(callee)

    async def send(self, method: str, sender: str, call: str | None = None, to: str | None = None,
                   uri: str | None = None, headers: dict | None = None, body: str | None = None,
                   content_type: str | None = None, save: str | None = None, raw: str | None = None,
                   line: int = 0, index: str | None = None, requirement: str | None = None) -> ClientRequest | None:
        where = f"in {call}" if call else f"to {to or uri}"
        async with self.step(f"{sender} sends {method or 'raw bytes'} {where}", line, index, requirement) as result:
            agent = self.binding.agent(sender)
            if raw is not None:
                data = self.var(raw).replace("\r\n", "\n").replace("\n", "\r\n").encode()
                dest = self.binding.address(to) if to else self.calls[call].peer
                await agent.send_raw(data, dest)
                return None
            dialog = self.calls[call] if call else None
            target_uri = None if dialog else (self.var(uri) if uri else self.binding.uri(to))
            dest = None if dialog else (self._dest(to, agent) if to else None)
            cr = await agent.request(method, target_uri, call=dialog, headers=self._headers(headers),
                                     body=(self.var(body) or "").encode(), content_type=content_type, dest=dest)
            if method == "REFER" and dialog is not None:
                from referee.stack import ReferSubscriber
                sub = ReferSubscriber(cr.request, first_in_dialog=dialog.refers_sent == 0)
                dialog.refers_sent += 1
                dialog.subscriptions.append(sub)
                cr.subscription = sub
            self._mark(result, cr.request)
            if save:
                self.saved[save] = cr
            return cr

    async def expect(self, what: str | int, at: str, call: str | None = None, response_to: str | None = None,
                     headers: dict | None = None, sipfrag: str | None = None, state: str | None = None,
                     timeout: float = 5.0, optional: bool = False, save: str | None = None,
                     reply: int | None = None, reply_headers: dict | None = None, reply_body: str | None = None,
                     reply_content_type: str | None = None, answer: bool = False, line: int = 0,
                     index: str | None = None, requirement: str | None = None,
                     if_absent: str = "fail") -> Inbound | None:
        """Wait for a message at an agent. In the body, a message of the right kind that breaks a
        condition is a FAIL; nothing of that kind at all is a FAIL too, unless `if_absent` is
        'inconclusive' (the message is a prerequisite judged by another test purpose)."""
        desc = f"{at} expects {what}" + (" (optional)" if optional else "")
        async with self.step(desc, line, index, requirement) as result:
            try:
                item = await self._expect_one(what, at, call, response_to, headers, sipfrag, state, timeout,
                                              optional)
            except ExpectationFailed as exc:
                if if_absent == "inconclusive" and all(e.absent for e in exc.evidence):
                    raise Inconclusive(f"{exc}\n(its absence is judged by another test purpose; without it "
                                       f"this requirement cannot be judged)") from None
                raise
            if item is None:
                result.status, result.detail = "skipped", f"optional {what} not seen within {timeout:g} s"
                return None
            self._mark(result, item.message)
            await self._after_match(item, at, save, reply, reply_headers, reply_body, reply_content_type, answer)
            return item

    async def _expect_one(self, what, at, call, response_to, headers, sipfrag, state, timeout, optional):
        agent = self.binding.agent(at)
        dialog = self.calls.get(call) if call else None
        where = None
        if response_to:
            saved = self.saved[response_to]

            def where(m, saved=saved):
                # read at each message: a request re-sent with credentials has a new CSeq
                r = _message_of(saved)
                return (isinstance(m, Response) and m.cseq.seq == r.cseq.seq and m.cseq.method == r.method
                        and m.call_id == r.call_id)
        try:
            return await agent.expect(what, timeout, dialog, self._matchers(headers), sipfrag, state, where)
        except ExpectationFailed:
            if optional:
                return None
            raise

    async def _after_match(self, item: Inbound, at: str, save, reply, reply_headers, reply_body,
                           reply_content_type, answer) -> None:
        agent = self.binding.agent(at)
        if answer:
            call = await agent.answer(item, reply or 200, headers=self._headers(reply_headers))
            if save and call is not None:
                self.calls[save] = call
        elif reply is not None:
            if item.message.method == "REFER" and reply < 300:
                await agent.accept_refer(item, reply, headers=self._headers(reply_headers))
            else:
                await agent.respond(item, reply, headers=self._headers(reply_headers),
                                    body=(self.var(reply_body) or "").encode(), content_type=reply_content_type)
        if save:
            self.saved[save] = item

    async def expect_none(self, what: str | int, at: str, within: float = 2.0, call: str | None = None,
                          headers: dict | None = None, line: int = 0, index: str | None = None,
                          requirement: str | None = None) -> None:
        async with self.step(f"{at} expects no {what} for {within:g} s", line, index, requirement):
            agent = self.binding.agent(at)
            await agent.expect_none(what, within, self.calls.get(call) if call else None, self._matchers(headers))

    async def reply(self, status: int, at: str, to: str, headers: dict | None = None, body: str | None = None,
                    content_type: str | None = None, line: int = 0, index: str | None = None,
                    requirement: str | None = None, save: str | None = None) -> None:
        """Answer a saved request. 2xx to a REFER accepts it (its subscription starts); 2xx to an
        INVITE answers it with SDP and makes the call `save`."""
        async with self.step(f"{at} answers {to} with {status}", line, index, requirement):
            agent = self.binding.agent(at)
            item = self.saved[to]
            if isinstance(item, Inbound) and item.message.method == "REFER" and status < 300:
                await agent.accept_refer(item, status, headers=self._headers(headers))
            elif isinstance(item, Inbound) and item.message.method == "INVITE" and 200 <= status < 300:
                call = await agent.answer(item, status, headers=self._headers(headers))
                if save and call is not None:
                    self.calls[save] = call
            else:
                await agent.respond(item, status, headers=self._headers(headers),
                                    body=(self.var(body) or "").encode(), content_type=content_type)

    async def any_order(self, expectations: list[dict], line: int = 0, index: str | None = None,
                        requirement: str | None = None) -> list[Inbound | None]:
        """Wait for several expectations that may be met in any order (each a dict of expect() args).

        Required ones are awaited together; optional ones are taken if they arrived meanwhile.
        """
        group_index = index or str(self._counter + 1)
        if index is None:
            self._counter += 1
        desc = "in any order: " + "; ".join(f"{e['at']} expects {e['what']}" for e in expectations)
        async with self.step(desc, line, group_index, requirement) as group:
            required = [e for e in expectations if not e.get("optional")]
            optional = [e for e in expectations if e.get("optional")]

            async def one(spec: dict, sub: str) -> Inbound | None:
                args = {k: v for k, v in spec.items() if k not in ("line", "requirement", "index")}
                return await self.expect(**args, line=spec.get("line", line), index=sub,
                                         requirement=spec.get("requirement"))

            subs = {id(e): f"{group_index}.{i + 1}" for i, e in enumerate(expectations)}
            results = await asyncio.gather(*(one(e, subs[id(e)]) for e in required), return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                raise failures[0] if isinstance(failures[0], StepFailed) else StepFailed(desc, str(failures[0]))
            for e in optional:
                results.append(await one({**e, "timeout": min(e.get("timeout", 1.0), 0.5)}, subs[id(e)]))
            return list(results)

    async def dut(self, action: str, args: dict | None = None, timeout: float = 10.0, save: str | None = None,
                  line: int = 0, index: str | None = None, requirement: str | None = None):
        """Make the DUT act through its driver (dial, answer, transfer ...) or wait for one of its events.

        A driver that cannot observe its product (`observes_product = False`: a person, an HTTP
        API or a command performs the action) only asks for the action; the SIP it implies is
        then awaited here (see `_dut_upper`)."""
        args = {k: self.var(v) if isinstance(v, str) else v for k, v in (args or {}).items()}
        async with self.step(f"DUT {action} {args}".strip(), line, index, requirement) as result:
            driver = self._driver()
            if not getattr(driver, "observes_product", True):
                return await self._dut_upper(driver, action, args, timeout, save, result)
            if action == "event":
                kind = args.pop("kind")
                event = await asyncio.to_thread(driver.wait_event, kind, timeout, **args)
                self.trace.dut_events.append((time.time(), event.kind, dict(event.fields)))
                if save:
                    self.saved[save] = event
                return event
            handle = await asyncio.to_thread(_act, driver, action, args)
            if action == "dial" and save:
                self.saved[save] = handle
            return handle

    async def _dut_upper(self, driver, action: str, args: dict, timeout: float, save: str | None,
                         result: StepResult):
        """The DUT's driver asks for the action (a person, an HTTP API, a command performs it) but
        cannot see what the product does. Wait, up to the driver's `action_timeout(action)`, until an
        agent of this flow has received the SIP the action implies (`_UPPER_EVIDENCE`), without
        consuming it: the next expect step still finds it. None in time, or the operator's skip
        (`driver.skip_requested()`), makes the test INCONCLUSIVE. A DUT event is inferred from the
        wire (`_upper_event`)."""
        driver.purpose = self.trace.scenario_id
        if action == "event":
            kind = args.pop("kind")
            event = await self._upper_event(kind, args, timeout, result, driver.sip_calls)
            self.trace.dut_events.append((time.time(), event.kind, dict(event.fields)))
            if save:
                self.saved[save] = event
            return event
        since = {party: len(agent.log) for party, agent in self.binding.agents.items()}
        handle = await asyncio.to_thread(_act, driver, action, args)
        if action == "dial" and save:
            self.saved[save] = handle
        if action not in _UPPER_EVIDENCE:       # a setting (answer mode, refer policy): nothing on the wire
            return handle
        what, shows = _UPPER_EVIDENCE[action]
        limit = float(driver.action_timeout(action))
        deadline = time.monotonic() + limit
        outcome = "interrupted"
        try:
            while True:
                found = next(((party, entry) for party, agent in self.binding.agents.items()
                              for entry in agent.log[since[party]:]
                              if entry.direction == "received" and entry.message is not None
                              and not entry.retransmission and shows(entry.message)), None)
                if found is not None:
                    break
                if driver.skip_requested():
                    raise Inconclusive(f"the operator skipped the action ({action.replace('_', ' ')}): "
                                       f"nothing the DUT does here can be judged")
                if time.monotonic() >= deadline:
                    raise Inconclusive(f"no evidence: the DUT was asked to {action.replace('_', ' ')} "
                                       f"(driver {driver.name}) but no {what} reached the suite's agents "
                                       f"within {limit:g} s")
                await asyncio.sleep(0.05)
            party, entry = found
            if action == "dial":
                driver.sip_calls[handle] = entry.message.call_id or ""
            outcome = f"seen: {party} received {entry.message.summary()}"
            result.detail = outcome
            return handle
        except Inconclusive as exc:
            outcome = f"{str(exc).split(':')[0]}: the test is INCONCLUSIVE"
            raise
        finally:
            driver.action_over(action, outcome)

    async def _upper_event(self, kind: str, match: dict, timeout: float, result: StepResult,
                           sip_calls: dict[str, str]) -> "WireEvent":
        """A DUT event for a driver that cannot report its product's events: `confirmed` once the
        call's ACK crossed an agent's socket, `disconnected` once its BYE did (or a final answer
        >= 300 to its INVITE); any other kind cannot be known from the wire, and the flow goes on
        at once."""
        handle = str(match.get("call", ""))
        call_id = sip_calls.get(handle) if handle else None
        if kind not in ("confirmed", "disconnected"):
            result.detail = f"the DUT's own {kind!r} event cannot be seen through this driver: not waited for"
            return WireEvent(kind, {**{k: str(v) for k, v in match.items()}, "inferred": "no"})

        def shows(msg) -> bool:
            if call_id is not None and msg.call_id != call_id:
                return False
            if kind == "confirmed":
                return isinstance(msg, Request) and msg.method == "ACK"
            return (isinstance(msg, Request) and msg.method == "BYE") or (
                isinstance(msg, Response) and msg.status >= 300 and msg.cseq.method == "INVITE")

        deadline = time.monotonic() + timeout
        while True:
            for party, agent in self.binding.agents.items():
                for entry in agent.log:
                    if entry.message is not None and shows(entry.message):
                        result.detail = f"inferred from the wire: {party} {entry.direction} {entry.message.summary()}"
                        return WireEvent(kind, {"call": handle, "sip_call_id": entry.message.call_id or "",
                                                "inferred": "wire"})
            if time.monotonic() >= deadline:
                which = f"call {handle} ({call_id})" if call_id else (f"call {handle}" if handle else "any call")
                raise Inconclusive(f"no evidence that {which} is {kind}: no "
                                   f"{'ACK' if kind == 'confirmed' else 'BYE'} crossed the agents' sockets within "
                                   f"{timeout:g} s")
            await asyncio.sleep(0.05)

    def _driver(self):
        dut = self.binding.dut
        if dut is None or dut.driver is None:
            raise HarnessError("this step needs a DUT driver (the DUT profile has none): "
                               "the DUT cannot be made to act")
        return dut.driver

    async def wait(self, seconds: float, line: int = 0, index: str | None = None) -> None:
        async with self.step(f"wait {seconds:g} s", line, index):
            await asyncio.sleep(seconds)

    async def check(self, call: str, up: bool = True, grace: float = 1.0, line: int = 0,
                    index: str | None = None, requirement: str | None = None) -> None:
        async with self.step(f"call {call} is {'up' if up else 'ended'}", line, index, requirement):
            c = self.calls[call]
            if up:
                if not c.is_up:
                    raise ExpectationFailed(f"call {call} ({c.call_id}) was ended (BYE received or sent)")
            else:
                try:
                    await asyncio.wait_for(c.ended.wait(), grace)
                except asyncio.TimeoutError:
                    raise ExpectationFailed(f"call {call} ({c.call_id}) is still up after {grace:g} s") from None

    async def notify(self, status: int, sender: str, refer: str, final: bool | None = None,
                     expect: str | None = None, timeout: float = 5.0, headers: dict | None = None,
                     save: str | None = None, line: int = 0, index: str | None = None,
                     requirement: str | None = None) -> ClientRequest:
        """An agent reports on a REFER it received with a NOTIFY of its subscription (made now if the
        REFER was not answered yet). With `expect`, the DUT's answer to the NOTIFY is judged."""
        final = status >= 200 if final is None else final
        desc = (f"{sender} sends NOTIFY (sipfrag {status}, {'terminated' if final else 'active'})"
                + (f"; the DUT answers {expect}" if expect else ""))
        async with self.step(desc, line, index, requirement) as result:
            agent = self.binding.agent(sender)
            item = self.saved[refer]
            if not isinstance(item, Inbound) or item.message.method != "REFER":
                raise HarnessError(f"notify: {refer!r} is not a REFER this agent received")
            call, notifier = agent.refer_subscription(item)
            cr = await agent.notify_transfer(call, status, final=final, notifier=notifier,
                                             headers=self._headers(headers))
            self._mark(result, cr.request)
            if save:
                self.saved[save] = cr
            if expect:
                response = await cr.final(timeout)
                self._mark(result, response)
                from referee.agent import status_matches
                if not status_matches(expect, response.status):
                    raise self.violation(response, "status", expect, f"{response.status} {response.reason}",
                                         f"the DUT answered the NOTIFY (sipfrag {status}) with {response.status} "
                                         f"{response.reason}, expected {expect}")
            return cr

    async def collect(self, what: str, at: str, call: str | None = None, until: str = "final",
                      timeout: float = 5.0, first_timeout: float | None = None, max: int = 8, save: str = "",
                      line: int = 0, index: str | None = None, requirement: str | None = None,
                      if_absent: str = "fail") -> list[Inbound]:
        """Every `what` the agent receives, each within `timeout` of the previous one, up to the final
        NOTIFY (a final sipfrag status or Subscription-State terminated) or, with until='quiet',
        until none comes for `timeout`. Saved as a list under `save`."""
        from referee.agent.notifies import describe, is_final
        desc = f"{at} collects every {what}" + (" up to the final one" if until == "final" else "")
        async with self.step(desc, line, index, requirement) as result:
            agent = self.binding.agent(at)
            dialog = self.calls.get(call) if call else None
            got: list[Inbound] = []
            for n in range(max):
                wait = first_timeout if (n == 0 and first_timeout is not None) else timeout
                try:
                    item = await agent.expect(what, wait, dialog)
                except ExpectationFailed as exc:
                    if until == "quiet" and got:
                        break
                    if not got and if_absent == "inconclusive" and all(e.absent for e in exc.evidence):
                        raise Inconclusive(f"{exc}\n(none came: their absence is judged by another test "
                                           f"purpose; without them this requirement cannot be judged)") from None
                    so_far = "\n".join(f"    {describe(i.message) if what == 'NOTIFY' else i.summary()}"
                                        for i in got) or "    none"
                    raise ExpectationFailed(f"{exc}\n  {what}s before it (none final):\n{so_far}",
                                            exc.evidence) from None
                self._mark(result, item.message)
                got.append(item)
                if until == "final" and what == "NOTIFY" and is_final(item.message):
                    break
            else:
                if until == "final":
                    last = got[-1].message
                    raise self.violation(last, "message", f"a final {what} within {max}",
                                         describe(last) if what == "NOTIFY" else last.summary(),
                                         f"{max} {what}s and none final (final status or Subscription-State "
                                         f"terminated)")
            self.saved[save] = got
            result.detail = f"{len(got)} {what}{'s' if len(got) != 1 else ''}"
            return got

    async def set_options(self, party: str, options: dict, line: int = 0, index: str | None = None) -> None:
        desc = f"{party}: " + ", ".join(f"{k} = {v}" for k, v in options.items())
        async with self.step(desc, line, index):
            agent = self.binding.agent(party)
            for key, value in options.items():
                setattr(agent, key, value)

    async def library_call(self, kind: str, name: str, args: dict | None = None, line: int = 0,
                           index: str | None = None, requirement: str | None = None):
        """A named check or action of the step library, with its arguments."""
        from .context import StepContext
        from .library import lookup
        entry = lookup(name)
        if entry is None:
            raise HarnessError(f"no library step {name!r}")
        args = dict(args or {})
        kwargs = {}
        for arg, param in entry.params.items():
            if arg in args:
                value = args[arg]
                if param.type in ("string", "strings", "status"):
                    value = [self.var(v) for v in value] if isinstance(value, list) else \
                        (self.var(value) if isinstance(value, str) else value)
                kwargs[arg] = value
            elif param.default is not None:
                kwargs[arg] = param.default
        summary = entry.doc.split("\n", 1)[0].rstrip(".")
        async with self.step(f"{summary} [{kind} {name}]", line, index, requirement) as result:
            return await entry.fn(StepContext(self, result, name), **kwargs)

    # -- trace ---------------------------------------------------------------------------------
    def finish(self, failure: "StepFailed | str | None" = None) -> Trace:
        """Collect every agent's messages into the trace (time order) and set its verdict."""
        trace = self.trace
        if isinstance(failure, StepFailed):
            trace.failure, trace.verdict, trace.phase = str(failure), failure.verdict or FAIL, failure.phase
            trace.evidence = list(failure.evidence)
        elif failure is not None:
            trace.failure, trace.verdict, trace.phase = str(failure), ERROR, self.phase
        else:
            trace.failure, trace.verdict, trace.phase = None, PASS, ""
        for party, agent in self.binding.agents.items():
            for entry in agent.log:
                msg = entry.message
                summary = msg.summary() if msg is not None else f"unparsable: {entry.error}"
                trace.messages.append(TraceMessage(
                    entry.time, party, entry.direction, entry.local, entry.remote, entry.transport, summary,
                    entry.raw, self._matched.get(id(msg)) if msg is not None else None, entry.error,
                    entry.retransmission))
            trace.findings += [f"{party}: {f}" for f in agent.findings]
        trace.messages.sort(key=lambda m: m.time)
        # matched: indices into trace.messages (meaningful in trace.json, unlike object ids)
        for step in trace.steps:
            step.matched = [i for i, m in enumerate(trace.messages) if m.step == step.index]
        return trace

    # -- evidence ------------------------------------------------------------------------------
    def violation(self, msg: Request | Response | Inbound, part: str, expected: str, seen: str,
                  text: str | None = None) -> ExpectationFailed:
        """An ExpectationFailed carrying the evidence of `msg` (found in the agents' logs: who got
        it, from where, when). Raise it from a step: `raise flow.violation(notify, 'Event', ...)`."""
        return ExpectationFailed(text or f"{part}: expected {expected}, seen {seen}",
                                 [self.evidence(msg, part, expected, seen)])

    def evidence(self, msg: Request | Response | Inbound, part: str, expected: str, seen: str) -> Evidence:
        message = _message_of(msg)
        for party, agent in self.binding.agents.items():
            for entry in agent.log:
                if entry.message is message and entry.direction == "received":
                    return evidence_of(party, message, entry.remote, entry.time, part, expected, seen)
        return evidence_of("", message, None, 0.0, part, expected, seen)


def _act(driver, action: str, args: dict):
    """Run one driver action of a `dut:` step (in a worker thread: drivers block)."""
    if action == "transfer":
        return driver.transfer(args["to"], args.get("call"))
    if action == "attended_transfer":
        return driver.transfer_attended(args["call"], args["consult_call"])
    if action == "dial":
        return driver.dial(args["to"])
    if action == "answer_mode":
        return driver.set_answer_mode(args["mode"])
    if action == "refer_policy":
        return driver.set_refer_policy(args["policy"])
    if action == "reject":
        return driver.reject(int(args.get("code", 486)), args.get("call"))
    return getattr(driver, action)(args.get("call"))


def _to_tag(msg) -> str | None:
    try:
        return msg.to.tag
    except Exception:      # noqa: BLE001 - a DUT's broken To header is judged elsewhere, not here
        return None


def _is_request(msg, *methods: str) -> bool:
    return isinstance(msg, Request) and msg.method in methods


def _answers_invite(msg, low: int, high: int) -> bool:
    return isinstance(msg, Response) and low <= msg.status <= high and msg.cseq.method == "INVITE"


# What a DUT action shows on the wire, as received by an agent (for drivers that cannot observe
# their product: Flow._dut_upper): action -> (what it is called, does this message show it?)
_UPPER_EVIDENCE = {
    "dial": ("INVITE", lambda m: _is_request(m, "INVITE") and not _to_tag(m)),
    "answer": ("200 OK to an INVITE", lambda m: _answers_invite(m, 200, 299)),
    "reject": ("final answer (3xx-6xx) to an INVITE", lambda m: _answers_invite(m, 300, 699)),
    "hangup": ("BYE, CANCEL or final answer to a ringing call",
               lambda m: _is_request(m, "BYE", "CANCEL") or _answers_invite(m, 300, 699)),
    "hold": ("re-INVITE or UPDATE", lambda m: (_is_request(m, "INVITE") and bool(_to_tag(m)))
             or _is_request(m, "UPDATE")),
    "transfer": ("REFER", lambda m: _is_request(m, "REFER")),
    "attended_transfer": ("REFER", lambda m: _is_request(m, "REFER")),
}


@dataclasses.dataclass(frozen=True)
class WireEvent:
    """A DUT event inferred from what crossed the agents' sockets (`inferred`: wire), or taken as
    given because nothing on the wire can show it (`inferred`: no)."""
    kind: str
    fields: dict[str, str]


def _origin(exc: BaseException) -> str:
    """' (at referee/x.py:12 in f)': the innermost frame of the traceback inside referee."""
    import traceback
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/referee/" in f.filename.replace("\\", "/")]
    if not frames:
        return ""
    f = frames[-1]
    short = f.filename.replace("\\", "/").split("/referee/", 1)[-1]
    return f" (at referee/{short}:{f.lineno} in {f.name})"


def _message_of(item) -> Request | Response:
    if isinstance(item, ClientRequest):
        return item.request
    if isinstance(item, Inbound):
        return item.message
    return item
