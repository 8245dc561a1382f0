"""What a SIPp run leaves behind: counters, failure reasons, response times, logs."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from referee.sipp.errors import SippCallsFailed
from referee.sipp.screen import MessageRow
from referee.sipp.stats import RttSample, StatRow, read_rtt_csv, read_stat_csv, split_log_entries

#: SIPp's documented exit codes
EXIT_MEANINGS = {
    0: "all calls were successful",
    1: "at least one call failed",
    97: "exit on internal command",
    99: "normal exit without calls processed",
    255: "fatal error",
    254: "fatal error binding a socket",
}

# log entries that describe normal scenario flow, not problems
_FLOW_NOTES = ("jumping to label", "has ended -> exiting")
_STAMP = re.compile(r"\d{4}-\d\d-\d\d\t\d\d:\d\d:\d\d\.\d+\t\d+\.\d+: ([^\r\n]*)")


@dataclasses.dataclass(frozen=True)
class Progress:
    """Live counters: the screen where it shows them, else the last periodic statistics line."""

    created: int
    successful: int
    failed: int
    current: int
    target_rate: float | None
    rate: float | None


@dataclasses.dataclass
class SippResult:
    """Everything a finished SIPp run left behind."""

    name: str
    command: list[str]
    exit_code: int | None           # None: killed by a signal
    signal: int | None
    successful: int
    failed: int
    created: int
    call_rate: float                # measured, cumulative (calls per second)
    target_rate: float
    retransmissions: int
    failure_reasons: dict[str, int]  # e.g. {'FailedTimeoutOnRecv': 2}
    response_times: dict[str, float]  # average seconds per RTD timer (from -trace_stat)
    rtt: list[RttSample]            # every response time (only with trace_rtt=True)
    errors: list[str]               # entries of SIPp's error log (-trace_err)
    terminal_errors: list[str]      # error/warning lines SIPp printed on its terminal
    messages: tuple[MessageRow, ...]  # last message table seen on the scenario screen
    screen: str                     # final screens (-trace_screen)
    output: str                     # terminal output with escape sequences removed
    duration: float                 # wall-clock seconds from start to exit
    timed_out: bool                 # the wall-clock timeout forced the stop
    work_dir: Path
    logs: str = ""                  # <log> actions (only with trace_logs=True)
    message_log: str = ""           # every message sent/received (only with trace_msg=True)

    @property
    def exit_meaning(self) -> str:
        if self.exit_code is None:
            return f"killed by signal {self.signal}"
        return EXIT_MEANINGS.get(self.exit_code, f"unknown exit code {self.exit_code}")

    @property
    def ok(self) -> bool:
        return (self.exit_code == 0 and self.failed == 0 and self.successful > 0
                and not self.timed_out)

    def summary(self) -> str:
        parts = [f"SIPp {self.name}: exit {self.exit_code} ({self.exit_meaning})",
                 f"{self.successful} successful, {self.failed} failed of {self.created} created",
                 f"rate {self.call_rate:.2f} cps (target {self.target_rate:g})"]
        if self.timed_out:
            parts.append(f"stopped by the wall-clock timeout after {self.duration:.1f} s")
        if self.failure_reasons:
            parts.append("failures: " + ", ".join(f"{k}={v}" for k, v in self.failure_reasons.items()))
        said = self.problems(self.terminal_errors)
        if said:
            parts.append("SIPp said: " + " | ".join(said[-3:]))
        logged = self.problems(self.errors)
        if logged:
            parts.append("error log: " + " | ".join(e.replace("\n", " ")[:300] for e in logged[-3:]))
        return "; ".join(parts)

    @staticmethod
    def problems(entries: list[str]) -> list[str]:
        """Entries that report problems (ontimeout jumps and twin exits are normal flow)."""
        return [e for e in entries if not any(note in e for note in _FLOW_NOTES)]

    def check(self, successful: int | None = None) -> "SippResult":
        """Raise SippCallsFailed unless the run ended cleanly with (at least) `successful` calls."""
        wanted = successful if successful is not None else max(self.created, 1)
        if self.ok and self.successful >= wanted:
            return self
        reason = f"expected {wanted} successful call(s) and exit code 0"
        unanswered = {k: v for k, v in self.failure_reasons.items()
                      if k in ("FailedTimeoutOnRecv", "FailedMaxUDPRetrans")}
        if unanswered:
            reason += f"; the peer never answered ({', '.join(f'{k}={v}' for k, v in unanswered.items())})"
        if self.created == 0:
            reason += "; no call was ever created (no INVITE arrived, or none could be sent)"
        raise SippCallsFailed(f"{reason}; got: {self.summary()}")


def terminal_errors(output: str) -> list[str]:
    """The error/warning lines SIPp printed (each starts with its timestamp)."""
    return list(dict.fromkeys(s.strip() for s in _STAMP.findall(output) if s.strip()))


def collect(*, name: str, command: list[str], work_dir: Path, exit_code: int | None, sig: int | None,
            output: str, messages: tuple[MessageRow, ...], duration: float, timed_out: bool) -> SippResult:
    """Build the result from SIPp's files in `work_dir` and what the wrapper saw."""
    rows = read_stat_csv(work_dir / "stats.csv")
    last = rows[-1] if rows else StatRow({})
    rtt_files = sorted(work_dir.glob("*_rtt.csv"))
    return SippResult(
        name=name,
        command=command,
        exit_code=exit_code,
        signal=sig,
        successful=last.successful,
        failed=last.failed,
        created=last.created,
        call_rate=last.call_rate,
        target_rate=last.target_rate,
        retransmissions=last.retransmissions,
        failure_reasons=last.failure_reasons(),
        response_times=last.response_times(),
        rtt=[s for f in rtt_files for s in read_rtt_csv(f)],
        errors=split_log_entries(_read(work_dir / "errors.log")),
        terminal_errors=terminal_errors(output),
        messages=messages,
        screen=_read(work_dir / "screens.log"),
        output=output,
        duration=duration,
        timed_out=timed_out,
        work_dir=work_dir,
        logs=_read(work_dir / "logs.log"),
        message_log=_read(work_dir / "messages.log"),
    )


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
