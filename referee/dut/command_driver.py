"""CommandDriver: a device asked to act by running a command.

The profile maps each action to a command line (`[actions.NAME] run = [...]`, one argument per
element, no shell) with placeholders; `[command] timeout` bounds every run. A command that
exits non-zero, or does not finish in time, is a DriverError naming the action, the exit status
and its output; the SIP evidence is then awaited by the runner. The programs are looked up
before the first test (a missing one stops the run with the fix).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from .driver import DriverError, ProgramMissing
from .programs import find_program
from .upper import UpperTesterDriver
from .upper_profile import expand

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class CommandDriver(UpperTesterDriver):
    name = "command"

    def start(self, timeout: float = 15.0) -> None:
        for spec in self.upper.actions.values():
            self._program(spec.name, spec.run[0])

    def _program(self, action: str, first: str) -> str:
        if first == "{python}":
            return sys.executable
        try:
            return find_program(first)
        except ProgramMissing as exc:
            raise ProgramMissing(f"{self.profile.path}: key 'actions.{action}.run': {exc}") from None

    def _ask(self, action: str, **given: str) -> str:
        spec = self._spec(action)
        values = self.values(**given, python=sys.executable, repo=REPO)
        argv = [expand(a, values) for a in spec.run]
        argv[0] = self._program(action, spec.run[0])
        shown = self.redact(" ".join(argv))
        limit = self.upper.command.timeout
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, errors="replace",
                                    cwd=str(self.profile.path.parent), start_new_session=True)
        except OSError as exc:
            raise DriverError(self.redact(f"command: {action}: cannot run {shown}: {exc}")) from None
        try:
            output, _ = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            try:
                output, _ = proc.communicate(timeout=2.0)
            except subprocess.TimeoutExpired:     # a descendant left its own group and holds the pipe
                output = ""
            self._note(f"{action}: {shown} -> killed after {limit:g} s")
            raise DriverError(self.redact(f"command: {action}: {shown} did not finish within {limit:g} s "
                                          f"(killed); output: {_tail(output)}")) from None
        self._note(self.redact(f"{action}: {shown} -> exit {proc.returncode} {_tail(output, 200)}"))
        if proc.returncode != 0:
            raise DriverError(self.redact(f"command: {action}: {shown} exited with status {proc.returncode}; "
                                          f"output: {_tail(output)}"))
        return output


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


def _tail(text: str | None, limit: int = 500) -> str:
    text = (text or "").strip()
    return (text if len(text) <= limit else "..." + text[-limit:]) or "(none)"
