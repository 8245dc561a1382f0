"""Figures of a load step from SIPp's own records: per-call REFER latencies, rate, concurrency.

The transferor SIPp runs with `-trace_shortmsg`: one tab-separated line per message sent (S) or
received (R), with SIPp's timestamp, the Call-ID, the CSeq and the start line:

    2026-01-01  12:00:00.231429  1767268800.231429  S  1-31235@127.0.0.1  CSeq:2 REFER  REFER sip:... SIP/2.0

From these lines, per call (Call-ID) of the transferor:
  * started:      first INVITE sent (CSeq 1)      -> the achieved call rate
  * 202 latency:  first REFER sent -> first 202 received for that REFER's CSeq
  * NOTIFY latency: first REFER sent -> first arrival of the last NOTIFY of the call (the one
    with the highest CSeq: the transferee sends NOTIFY 100 Trying, then the final one)
  * span:         first to last message           -> the most calls up at the same time
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

_CSEQ = re.compile(r"CSeq:\s*(\d+)\s+([A-Za-z]+)")


@dataclasses.dataclass
class CallTimes:
    """What one transferor call went through, in seconds since the epoch (None: never happened)."""

    first: float
    last: float
    invite_sent: float | None = None
    refer_sent: float | None = None
    refer_cseq: int | None = None
    accepted: float | None = None            # first 202 for the REFER
    notify_cseq: int = -1                    # highest NOTIFY CSeq received so far
    notify_at: float | None = None           # first arrival of that NOTIFY

    @property
    def accept_ms(self) -> float | None:
        if self.refer_sent is None or self.accepted is None:
            return None
        return 1000.0 * (self.accepted - self.refer_sent)

    @property
    def notify_ms(self) -> float | None:
        if self.refer_sent is None or self.notify_at is None:
            return None
        return 1000.0 * (self.notify_at - self.refer_sent)


def read_shortmsg(path: Path) -> dict[str, CallTimes]:
    """Calls (by Call-ID) of a SIPp `-trace_shortmsg` file; lines that do not parse are skipped."""
    calls: dict[str, CallTimes] = {}
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) < 7:
                continue
            try:
                at = float(fields[2])
            except ValueError:
                continue
            direction, call_id, cseq_text, start_line = fields[3], fields[4], fields[5], fields[6]
            match = _CSEQ.match(cseq_text)
            if direction not in ("S", "R") or not match:
                continue
            cseq, method = int(match.group(1)), match.group(2).upper()
            call = calls.get(call_id)
            if call is None:
                call = calls[call_id] = CallTimes(first=at, last=at)
            call.first, call.last = min(call.first, at), max(call.last, at)
            is_response = start_line.startswith("SIP/2.0 ")
            if direction == "S" and not is_response:
                if method == "INVITE" and call.invite_sent is None:
                    call.invite_sent = at
                elif method == "REFER" and call.refer_sent is None:
                    call.refer_sent, call.refer_cseq = at, cseq
            elif direction == "R" and is_response:
                if (method == "REFER" and cseq == call.refer_cseq and call.accepted is None
                        and start_line[8:11] == "202"):
                    call.accepted = at
            elif direction == "R" and method == "NOTIFY" and cseq > call.notify_cseq:
                call.notify_cseq, call.notify_at = cseq, at
    return calls


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (the smallest value with at least pct % of the values <= it)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def achieved_rate(starts: list[float]) -> float | None:
    """Calls per second between the first and the last call started (None under two calls)."""
    if len(starts) < 2:
        return None
    span = max(starts) - min(starts)
    return (len(starts) - 1) / span if span > 0 else None


def max_concurrent(spans: list[tuple[float, float]]) -> int:
    """The most intervals (first, last) open at the same instant."""
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    current = best = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


@dataclasses.dataclass
class TransferorFigures:
    calls_seen: int
    rate_achieved: float | None
    concurrent_max: int
    accept_ms: list[float]
    notify_ms: list[float]

    def summary(self) -> dict[str, float | int | None]:
        return {
            "calls_seen": self.calls_seen,
            "rate_achieved_cps": self.rate_achieved,
            "concurrent_calls_max": self.concurrent_max,
            "refer_202_samples": len(self.accept_ms),
            "refer_202_p50_ms": percentile(self.accept_ms, 50),
            "refer_202_p95_ms": percentile(self.accept_ms, 95),
            "refer_202_max_ms": max(self.accept_ms) if self.accept_ms else None,
            "final_notify_samples": len(self.notify_ms),
            "final_notify_p50_ms": percentile(self.notify_ms, 50),
            "final_notify_p95_ms": percentile(self.notify_ms, 95),
            "final_notify_max_ms": max(self.notify_ms) if self.notify_ms else None,
        }


def transferor_figures(calls: dict[str, CallTimes]) -> TransferorFigures:
    """Figures of the calls that began with an INVITE (the transferor's own calls)."""
    own = [c for c in calls.values() if c.invite_sent is not None]
    return TransferorFigures(
        calls_seen=len(own),
        rate_achieved=achieved_rate([c.invite_sent for c in own if c.invite_sent is not None]),
        concurrent_max=max_concurrent([(c.first, c.last) for c in own]),
        accept_ms=[c.accept_ms for c in own if c.accept_ms is not None],
        notify_ms=[c.notify_ms for c in own if c.notify_ms is not None],
    )
