"""OperatorDriver: a person performs each action on the device, told what to do on the terminal.

For every action the suite prints one instruction, e.g.

    [TR-REFER-001] On 'Lab phone T54W': transfer the call with sip:transferee@127.0.0.1:40000 to
    sip:target@127.0.0.1:40002 (blind transfer) — waiting up to 60 s for its REFER (s + Enter: skip)

and the runner waits for the SIP evidence (not for a key press). `s` then Enter skips the action:
the test is INCONCLUSIVE. Settings that show nothing on the wire (answer mode, refer policy) are
confirmed with Enter. Per-action timeouts come from the profile (`[actions] timeout`, default
60 s; `[actions.NAME] timeout`), and so can the wording (`[actions.NAME] say`).

One person performs one action at a time: `referee run` refuses pytest-xdist (-n) for this driver.
"""

from __future__ import annotations

import time

from .driver import DriverError
from .terminal import OperatorTerminal
from .upper import EVIDENCE, ActionSkipped, UpperTesterDriver
from .upper_profile import expand

SKIP_WORDS = ("s", "skip")

ANSWER_MODES = {
    "auto": "let it answer incoming calls by itself (auto answer on)",
    "manual": "turn auto answer off (incoming calls ring until answered)",
    "noanswer": "turn auto answer off (incoming calls ring until answered)",
    "busy": "make it answer incoming calls busy (486; e.g. Do Not Disturb)",
    "decline": "make it decline incoming calls (603)",
}
REFER_POLICIES = {
    "accept": "let it accept transfer requests (REFER)",
    "decline": "make it decline transfer requests (REFER)",
}


class OperatorDriver(UpperTesterDriver):
    name = "operator"

    def __init__(self, *args, terminal: OperatorTerminal | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.terminal = terminal or OperatorTerminal()
        self._skipped = False

    def start(self, timeout: float = 15.0) -> None:
        try:
            self.terminal.describe()
        except OSError as exc:
            raise DriverError(f"operator: {exc}") from None

    # -- the runner's side ---------------------------------------------------------------------
    def skip_requested(self) -> bool:
        while not self._skipped:
            line = self.terminal.poll()
            if line is None:
                break
            if line.lower() in SKIP_WORDS:
                self._skipped = True
            else:
                self.terminal.say("  (still waiting for the device; s and Enter skips this action)")
        return self._skipped

    def action_over(self, action: str, outcome: str) -> None:
        super().action_over(action, outcome)
        self.terminal.end(f"  -> {outcome}")

    def _tidy(self, handles: list[str]) -> None:
        """The test is over: the person hangs up what is left (not awaited: nothing can be judged)."""
        try:
            self.terminal.begin(f"{f'[{self.purpose}] ' if self.purpose else ''}Test over: hang up every call "
                                f"still on '{self.device}'")
            self.terminal.end()
        except OSError:
            pass

    # -- asking --------------------------------------------------------------------------------
    def _ask(self, action: str, **given: str) -> str:
        self._skipped = False
        instruction = self.instruction(action, **given)
        limit = self.action_timeout(action)
        head = f"[{self.purpose}] " if self.purpose else ""
        self._note(f"{action}: asked: {instruction}")
        if action in EVIDENCE:
            self.terminal.begin(f"{head}On '{self.device}': {instruction} — waiting up to {limit:g} s for "
                                f"{EVIDENCE[action]} (s + Enter: skip)")
            return ""
        self._confirm(f"{head}On '{self.device}': {instruction}, then press Enter (s + Enter: skip; "
                      f"waiting up to {limit:g} s)", action, limit)
        return ""

    def _confirm(self, prompt: str, action: str, limit: float) -> None:
        """A setting nothing on the wire shows: the person confirms it with Enter."""
        self.terminal.begin(prompt)
        deadline = time.monotonic() + limit
        outcome = f"not confirmed within {limit:g} s: the test is INCONCLUSIVE"
        try:
            while time.monotonic() < deadline:
                line = self.terminal.poll()
                if line is None:
                    time.sleep(0.05)
                    continue
                if line.lower() in SKIP_WORDS:
                    outcome = "skipped: the test is INCONCLUSIVE"
                    break
                outcome = "done"
                return
            raise ActionSkipped(f"operator: {action.replace('_', ' ')} on {self.device!r} was {outcome.split(':')[0]}"
                                f" (the test cannot go on without it)")
        finally:
            self._note(f"{action}: {outcome}")
            self.terminal.end(f"  -> {outcome}")

    def instruction(self, action: str, **given: str) -> str:
        """What the person is asked to do, in words (the profile's `say`, or referee's own)."""
        spec = self.upper.actions.get(action)
        call = self.describe_call(given.get("call", ""))
        consult = self.describe_call(given.get("consult_call", ""))
        if spec is not None and spec.say:
            return expand(spec.say, self.values(**{**given, "call": call, "consult_call": consult}))
        target = given.get("target", "")
        mode, policy = given.get("mode", ""), given.get("policy", "")
        return {
            "dial": f"call {target}",
            "answer": "answer the ringing call",
            "reject": f"reject the ringing call (the suite asks for {given.get('code') or 'a rejection'}, "
                      f"e.g. Reject / Decline)",
            "hangup": f"hang up {call}",
            "hold": f"put {call} on hold",
            "transfer": f"transfer {call} to {target} (blind transfer)",
            "attended_transfer": f"transfer {call} to {consult.removeprefix('the call with ')} (attended "
                                 f"transfer: complete it from the consultation call)",
            "answer_mode": ANSWER_MODES.get(mode, f"set the answer mode to {mode}"),
            "refer_policy": REFER_POLICIES.get(policy, f"set the transfer policy to {policy}"),
        }[action]
