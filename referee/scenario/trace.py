"""What a flow run leaves behind: step results and every message, for reports and ladders."""

from __future__ import annotations

import dataclasses
import time


@dataclasses.dataclass
class StepResult:
    index: str
    line: int
    description: str
    status: str                  # passed | failed | skipped
    started: float
    ended: float
    requirement: str | None = None
    detail: str = ""             # the failure message, or why skipped
    matched: list[int] = dataclasses.field(default_factory=list)   # indices into Trace.messages
    phase: str = "body"          # preamble | body | postamble


@dataclasses.dataclass
class TraceMessage:
    time: float
    party: str
    direction: str               # sent | received
    local: tuple[str, int]
    remote: tuple[str, int]
    transport: str
    summary: str
    raw: bytes
    step: str | None = None      # index of the step that matched this message
    error: str | None = None
    retransmission: bool = False


@dataclasses.dataclass
class Trace:
    scenario_id: str = ""
    started: float = dataclasses.field(default_factory=time.time)
    steps: list[StepResult] = dataclasses.field(default_factory=list)
    messages: list[TraceMessage] = dataclasses.field(default_factory=list)
    dut_events: list[tuple[float, str, dict]] = dataclasses.field(default_factory=list)
    findings: list[str] = dataclasses.field(default_factory=list)
    failure: str | None = None    # the full failure text (None: passed)
    pcap: str | None = None       # path of this run's capture, when one was taken
    verdict: str = "pass"         # pass | fail | inconclusive | error (referee.scenario.verdict)
    phase: str = ""               # the phase the verdict came from ('' when passed)
    evidence: list = dataclasses.field(default_factory=list)   # referee.agent.Evidence of a FAIL
    rewrites: list = dataclasses.field(default_factory=list)   # echoes a middlebox changed (agents saw)

    @property
    def passed(self) -> bool:
        return self.failure is None

    def failed_step(self) -> StepResult | None:
        return next((s for s in self.steps if s.status == "failed"), None)

    def to_dict(self) -> dict:
        return {
            "scenario": self.scenario_id, "started": self.started, "failure": self.failure, "pcap": self.pcap,
            "verdict": self.verdict, "phase": self.phase,
            "evidence": [e.to_dict() for e in self.evidence],
            "findings": self.findings,
            "steps": [dataclasses.asdict(s) for s in self.steps],
            "messages": [{**dataclasses.asdict(m), "raw": m.raw.decode("utf-8", "replace")} for m in self.messages],
            "dut_events": [{"time": t, "kind": k, "fields": f} for t, k, f in self.dut_events],
        }
