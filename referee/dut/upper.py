"""Upper-tester drivers: the suite asks for an action, something outside it performs it.

ETSI conformance suites drive a device they cannot control through an "upper tester": the
suite asks for an action (a person, the device's HTTP call-control API or a command performs
it) and judges only what the device then sends on the wire. Three drivers do that here:

    driver = "operator"   a person, shown one instruction per action on the terminal
    driver = "http"       the device's call-control API (an "action URL" or a REST call)
    driver = "command"    a command line (a vendor tool, a script, a robot)

None of them sees the device's own state, so they declare `observes_product = False`, and the
runner (referee/scenario/flow.py, `Flow.dut`) takes over what a console driver would report:
after each action it waits, up to `action_timeout(action)`, until one of the flow's agents has
received the SIP the action implies (the INVITE of a dial, the REFER of a transfer ...), without
consuming it, and makes the test INCONCLUSIVE when none comes or the operator skips
(`skip_requested()`). It tells the driver what it saw with `action_over(action, outcome)`.
`wait_event` is answered by the runner from what the agents saw, never by these drivers.

The device runs by itself at the profile's `address`: nothing is launched or stopped.
"""

from __future__ import annotations

import abc
import re
import threading

from referee.scenario.verdict import INCONCLUSIVE

from .driver import ActionUnsupported, DriverError, PhoneDriver, PhoneEvent
from .upper_profile import ACTIONS, UpperTester, extension_of

#: what each action shows on the wire, as the instructions name it
EVIDENCE = {
    "dial": "its INVITE",
    "answer": "its 200 OK",
    "reject": "its final answer (3xx-6xx)",
    "hangup": "its BYE (or CANCEL)",
    "hold": "its re-INVITE",
    "transfer": "its REFER",
    "attended_transfer": "its REFER",
}


class ActionNotMapped(ActionUnsupported):
    """The profile says nothing about how to ask for this action: INCONCLUSIVE."""

    verdict = INCONCLUSIVE


class ActionSkipped(ActionUnsupported):
    """The operator skipped the action (or did not confirm it in time): INCONCLUSIVE."""

    verdict = INCONCLUSIVE


class UpperTesterDriver(PhoneDriver):
    """Base of the operator, http and command drivers: the bookkeeping of calls and the
    placeholders; subclasses say how an action is asked for (`_ask`)."""

    #: the runner must look for the evidence of an action itself (see the module docstring)
    observes_product = False
    #: the DUT session hands over the profile (its [actions] say how each action is asked for)
    needs_profile = True
    transports = ("udp", "tcp", "tls")      # whatever the device listens on: the profile says

    def __init__(self, host: str = "127.0.0.1", port: int = 0, user: str = "dut", transport: str = "udp",
                 *, profile=None, answer: str = "auto", certificates=None) -> None:
        super().__init__(host, port, user, transport)
        if profile is None or profile.upper is None:
            raise DriverError(f'{self.name}: driver = "{self.name}" needs its profile (the [actions] '
                              f"table): the DUT session must pass profile= to this driver")
        self.profile = profile
        self.upper: UpperTester = profile.upper
        self.device = profile.name
        self.capabilities = frozenset(profile.capabilities)
        self.purpose = ""             # the test purpose running now (set by the runner, for the operator)
        self._handles: dict[str, str] = {}     # call handle -> the URI it was dialed to
        self.sip_calls: dict[str, str] = {}    # call handle -> the Call-ID of its INVITE (filled in by the runner)
        self._current: str | None = None       # the call an action without a handle is about
        self._counter = 0
        self._log: list[str] = []
        self._lock = threading.Lock()

    # -- what the runner reads ----------------------------------------------------------------
    def action_timeout(self, action: str) -> float:
        """Seconds to wait for the SIP evidence of `action` (profile: actions.timeout, per action)."""
        return self.upper.action_timeout(action)

    def skip_requested(self) -> bool:
        """True once the person asked to skip the action in progress (only the operator can)."""
        return False

    def action_over(self, action: str, outcome: str) -> None:
        """The runner's word on the action just asked for: what it saw, or why it gave up."""
        self._note(f"{action}: {outcome}")

    # -- life cycle: the device runs by itself ----------------------------------------------------
    @classmethod
    def find_program(cls) -> str:
        return ""                     # nothing to launch (the command driver checks its commands in start)

    def start(self, timeout: float = 15.0) -> None:
        pass

    def stop(self, timeout: float = 5.0) -> None:
        """End the calls this test made, so that the device (which outlives the test) starts the
        next one idle. Never raises."""
        handles, self._handles, self._current = list(self._handles), {}, None
        if handles:
            self._tidy(handles)

    def _tidy(self, handles: list[str]) -> None:
        """Hang up each call (one that already ended is refused: that is fine), if the profile
        says how."""
        if "hangup" not in self.upper.actions:
            self._note(f"calls left to the device (no [actions.hangup]): {', '.join(handles)}")
            return
        for handle in handles:
            try:
                self._ask("hangup", call=handle)
            except DriverError:
                pass

    def alive(self) -> bool:
        return True

    def output_tail(self) -> str:
        """The actions asked for and their answers (shown in the test's report)."""
        with self._lock:
            return "\n".join(self._log[-40:])

    def _note(self, text: str) -> None:
        with self._lock:
            self._log.append(text)

    # -- actions -------------------------------------------------------------------------------
    def dial(self, uri: str) -> str:
        answer = self._ask("dial", target=uri)
        handle = self._handle_from(answer)
        self._handles[handle] = uri
        self._current = handle
        return handle

    def answer(self, call: str | None = None) -> None:
        self._ask("answer", call=call or "")

    def reject(self, code: int = 486, call: str | None = None) -> None:
        self._ask("reject", call=call or "", code=str(int(code)))

    def hangup(self, call: str | None = None) -> None:
        self._ask("hangup", call=self._call(call))

    def hold(self, call: str | None = None) -> None:
        self._ask("hold", call=self._call(call))

    def transfer(self, target_uri: str, call: str | None = None) -> None:
        self._ask("transfer", call=self._call(call), target=target_uri)

    def transfer_attended(self, call: str, consult_call: str) -> None:
        self._ask("attended_transfer", call=self._call(call), consult_call=consult_call)

    def set_answer_mode(self, mode: str) -> None:
        self._ask("answer_mode", mode=mode)

    def set_refer_policy(self, policy: str) -> None:
        self._ask("refer_policy", policy=policy)

    def wait_event(self, kind: str, timeout: float = 5.0, **match: str) -> PhoneEvent:
        raise ActionNotMapped(f"{self.name}: the device's own events are not visible to this driver; the "
                              f"runner infers {kind!r} from the wire (Flow.dut)")

    def events(self) -> list[PhoneEvent]:
        return []

    # -- helpers for subclasses -----------------------------------------------------------------
    def _call(self, call: str | None) -> str:
        return call or self._current or ""

    def _handle_from(self, answer: str) -> str:
        """The handle of a call just dialed: what the dial action's `handle` pattern finds in the
        answer, else the next number."""
        spec = self.upper.actions.get("dial")
        if spec is not None and spec.handle:
            m = re.search(spec.handle, answer or "")
            if m is None or not m.group(1):
                raise DriverError(f"{self.name}: dial: the answer does not match the profile's handle pattern "
                                  f"{spec.handle!r}: {(answer or '(empty)')[:300]!r}")
            return m.group(1)
        self._counter += 1
        return str(self._counter)

    def values(self, **given: str) -> dict[str, str]:
        """Placeholder values for a template of this profile."""
        settings = self.upper.http or self.upper.command
        target = given.get("target", "")
        values = {"host": self.host, "port": str(self.port), "user": self.user,
                  "target": target, "extension": extension_of(target) if target else "",
                  "call": "", "consult_call": "", "code": "", "mode": "", "policy": "",
                  "username": settings.username if settings else "",
                  "password": settings.password if settings else ""}
        values.update(given)
        return values

    def describe_call(self, handle: str) -> str:
        """How a person recognises a call: the party it was dialed to."""
        uri = self._handles.get(handle)
        return f"the call with {uri}" if uri else (f"call {handle}" if handle else "the current call")

    def redact(self, text: str) -> str:
        for secret in self.profile.secrets:
            text = text.replace(secret, "********")
        return text

    def _spec(self, action: str):
        if action not in ACTIONS:
            raise DriverError(f"{self.name}: unknown action {action!r}")
        spec = self.upper.actions.get(action)
        if spec is None:
            raise ActionNotMapped(f"{self.name}: the profile {self.profile.path} does not say how to ask "
                                  f"{self.device!r} to {action.replace('_', ' ')} (no [actions.{action}])")
        return spec

    @abc.abstractmethod
    def _ask(self, action: str, **given: str) -> str:
        """Ask for `action` with these placeholder values; returns the answer (HTTP body,
        command output, '' for a person). Raises DriverError when it is refused."""
