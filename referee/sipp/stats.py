"""Parse the files SIPp writes: `-trace_stat` CSV, `-trace_rtt` CSV and `-trace_err` log."""

from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path

# 'YYYY-MM-DD<TAB>HH:MM:SS.micro<TAB>epoch: ' starts every entry of SIPp's error log
_LOG_STAMP = re.compile(r"\d{4}-\d\d-\d\d\t\d\d:\d\d:\d\d\.\d+\t\d+\.\d+: ")


def duration_seconds(value: str) -> float | None:
    """SIPp durations: 'HH:MM:SS' or 'HH:MM:SS:micro' -> seconds."""
    parts = value.strip().split(":")
    if len(parts) not in (3, 4) or not all(p.isdigit() for p in parts):
        return None
    hours, minutes, seconds = (int(p) for p in parts[:3])
    micro = int(parts[3]) if len(parts) == 4 else 0
    return hours * 3600 + minutes * 60 + seconds + micro / 1e6


@dataclasses.dataclass(frozen=True)
class StatRow:
    """One line of the `-trace_stat` CSV (a dump of the statistics screen)."""

    fields: dict[str, str]

    def int(self, name: str) -> int:
        value = self.fields.get(name, "").strip()
        return int(value) if value.lstrip("-").isdigit() else 0

    def float(self, name: str) -> float:
        try:
            return float(self.fields.get(name, "").strip())
        except ValueError:
            return 0.0

    @property
    def successful(self) -> int:
        return self.int("SuccessfulCall(C)")

    @property
    def failed(self) -> int:
        return self.int("FailedCall(C)")

    @property
    def created(self) -> int:
        return self.int("TotalCallCreated")

    @property
    def current(self) -> int:
        return self.int("CurrentCall")

    @property
    def call_rate(self) -> float:
        """Cumulative measured call rate (calls per second)."""
        return self.float("CallRate(C)")

    @property
    def target_rate(self) -> float:
        return self.float("TargetRate")

    @property
    def retransmissions(self) -> int:
        return self.int("Retransmissions(C)")

    @property
    def elapsed(self) -> float:
        """Seconds since the start (from ElapsedTime(C))."""
        return duration_seconds(self.fields.get("ElapsedTime(C)", "")) or 0.0

    def failure_reasons(self) -> dict[str, int]:
        """Non-zero cumulative failure counters, e.g. {'FailedTimeoutOnRecv': 2}."""
        out: dict[str, int] = {}
        for name in self.fields:
            if name.startswith("Failed") and name.endswith("(C)") and name != "FailedCall(C)":
                count = self.int(name)
                if count:
                    out[name[:-3]] = count
        return out

    def response_times(self) -> dict[str, float]:
        """Average response time (seconds) of each RTD timer, by its name ('1', 'setup'...)."""
        out: dict[str, float] = {}
        for name, value in self.fields.items():
            match = re.fullmatch(r"ResponseTime(.+)\(C\)", name)
            if match and not match.group(1).endswith("StDev"):
                seconds = duration_seconds(value)
                if seconds is not None:
                    out[match.group(1)] = seconds
        return out


def read_stat_csv(path: Path) -> list[StatRow]:
    """All rows of a `-trace_stat` file (empty list if it does not exist yet)."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    if not rows:
        return []
    header = [h.strip() for h in rows[0]]
    return [StatRow(dict(zip(header, row))) for row in rows[1:] if len(row) >= len(header) - 1]


@dataclasses.dataclass(frozen=True)
class RttSample:
    at_ms: float          # ms since SIPp started
    response_ms: float
    rtd: str              # RTD timer name/number


def read_rtt_csv(path: Path) -> list[RttSample]:
    """Samples of a `-trace_rtt` file ('Date_ms;response_time_ms;rtd_no')."""
    samples: list[RttSample] = []
    if not path.is_file():
        return samples
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines()[1:]:
        parts = line.strip().split(";")
        if len(parts) >= 3:
            try:
                samples.append(RttSample(float(parts[0]), float(parts[1]), parts[2]))
            except ValueError:
                continue
    return samples


def split_log_entries(text: str) -> list[str]:
    """SIPp's error log entries (its lines are not always newline-terminated)."""
    starts = [m.start() for m in _LOG_STAMP.finditer(text)]
    entries = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        entry = _LOG_STAMP.sub("", text[start:end], count=1).strip()
        if entry:
            entries.append(entry)
    return entries
