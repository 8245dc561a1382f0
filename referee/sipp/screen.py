"""Read SIPp's screens (as rendered by `Terminal`) into numbers.

SIPp shows one screen at a time (keys 1-9 switch): the *scenario* screen (1) has the target
rate, total calls, the calls of the last period and one row per scenario message; the
*statistics* screen (2) has successful/failed counters and the measured call rate. A snapshot
holds whatever the visible screen shows; fields it does not show stay None.
"""

from __future__ import annotations

import dataclasses
import re

_INT = r"(\d+)"
_FLOAT = r"(\d+(?:\.\d+)?)"
_FOOTER = re.compile(r"^-{3,}.*-{2,}\s*$")


@dataclasses.dataclass(frozen=True)
class MessageRow:
    """One line of the scenario screen's message table."""

    label: str           # e.g. 'INVITE ---------->' or '<---------- 200'
    messages: int
    retrans: int | None
    timeouts: int | None
    unexpected: int | None


@dataclasses.dataclass(frozen=True)
class ScreenSnapshot:
    """What SIPp's screen showed at one moment."""

    kind: str    # 'scenario', 'statistics', 'repartition', 'variables', 'other'; 'none'/'partial': no full screen
    footer: str                      # last line: mode / key help / 'Test Terminated' / pause notice
    text: str                        # the whole screen
    port: int | None = None
    target_rate: float | None = None          # calls per second asked for (client side)
    total_time: float | None = None           # seconds since start
    total_calls: int | None = None            # calls created so far
    current_calls: int | None = None          # calls in progress
    period_calls: int | None = None           # calls created in the last period
    period_seconds: float | None = None
    call_rate: float | None = None            # periodic measured rate (cps)
    call_rate_cumulative: float | None = None
    successful: int | None = None
    failed: int | None = None
    messages: tuple[MessageRow, ...] = ()

    @property
    def paused(self) -> bool:
        return "paused" in self.footer.lower()

    @property
    def terminated(self) -> bool:
        return "terminated" in self.footer.lower()

    @property
    def rate(self) -> float | None:
        """Best available 'current rate' figure: measured periodic rate, else last period."""
        if self.call_rate is not None:
            return self.call_rate
        if self.period_calls is not None and self.period_seconds:
            return self.period_calls / self.period_seconds
        return None


def _kind(title: str) -> str:
    for word, kind in (("Scenario Screen", "scenario"), ("Statistics Screen", "statistics"),
                       ("Repartition", "repartition"), ("Variables", "variables")):
        if word in title:
            return kind
    return "other"


def _search(pattern: str, text: str) -> re.Match[str] | None:
    return re.search(pattern, text, re.MULTILINE)


def parse_screen(lines: list[str]) -> ScreenSnapshot:
    """Parse the rendered lines of one SIPp screen."""
    # the screen starts at its title line ('---- X Screen ---- [1-9]: Change Screen --')
    start = next((i for i, line in enumerate(lines) if "Screen" in line and line.startswith("---")), None)
    if start is None:
        return ScreenSnapshot(kind="none", footer="", text="\n".join(lines))
    body = list(lines[start:])
    while body and not body[-1].strip():
        body.pop()
    if len(body) < 3 or not _FOOTER.match(body[-1]):
        # caught in the middle of a redraw: no footer bar yet
        return ScreenSnapshot(kind="partial", footer="", text="\n".join(body))
    footer = body[-1].strip("- ").strip()
    text = "\n".join(body)
    kind = _kind(body[0])
    if kind == "scenario":
        return _parse_scenario(body, footer, text)
    if kind == "statistics":
        return _parse_statistics(footer, text)
    return ScreenSnapshot(kind=kind, footer=footer, text=text)


def _parse_scenario(body: list[str], footer: str, text: str) -> ScreenSnapshot:
    fields: dict[str, object] = {}
    # header row names the columns; the next row holds the values
    for i, line in enumerate(body[:-1]):
        if "Port" in line and "Total-time" in line:
            values = body[i + 1]
            rate = re.match(r"\s*" + _FLOAT + r"\(\d+ ms\)/" + _FLOAT + r"s", values)
            if rate:
                fields["target_rate"] = float(rate.group(1)) / (float(rate.group(2)) or 1.0)
                values = values[rate.end():]
            nums = re.match(r"\s*" + _INT + r"\s+" + _FLOAT + r" s\s+" + _INT, values)
            if nums:
                fields["port"] = int(nums.group(1))
                fields["total_time"] = float(nums.group(2))
                fields["total_calls"] = int(nums.group(3))
            break
    period = _search(_INT + r" new calls during " + _FLOAT + r" s period", text)
    if period:
        fields["period_calls"] = int(period.group(1))
        fields["period_seconds"] = float(period.group(2))
    current = _search(r"^\s*" + _INT + r" calls\b", text)
    if current:
        fields["current_calls"] = int(current.group(1))
    fields["messages"] = tuple(_message_rows(body))
    return ScreenSnapshot(kind="scenario", footer=footer, text=text, **fields)  # type: ignore[arg-type]


def _message_rows(body: list[str]) -> list[MessageRow]:
    rows: list[MessageRow] = []
    header = next((i for i, line in enumerate(body) if "Messages" in line and "Retrans" in line), None)
    if header is None:
        return rows
    col = body[header].index("Messages")
    for line in body[header + 1:-1]:
        if not line.strip() or len(line) <= col:
            continue
        label = line[:col].strip()
        label = re.sub(r"\s+E-RTD\d+$|\s+B-RTD\d+$|\s+BE-RTD\d+$", "", label)
        numbers = [int(n) for n in re.findall(r"\d+", line[col:])]
        if not label or not numbers:
            continue
        padded = numbers + [None] * (4 - len(numbers))  # type: ignore[list-item]
        rows.append(MessageRow(label, padded[0], padded[1], padded[2], padded[3]))  # type: ignore[arg-type]
    return rows


def _stat_pair(name: str, text: str) -> tuple[str, str] | None:
    match = _search(r"^\s*" + re.escape(name) + r"\s*\|([^|]*)\|(.*)$", text)
    return (match.group(1).strip(), match.group(2).strip()) if match else None


def _parse_statistics(footer: str, text: str) -> ScreenSnapshot:
    fields: dict[str, object] = {}
    rate = _stat_pair("Call Rate", text)
    if rate:
        periodic = re.match(_FLOAT, rate[0])
        cumulative = re.match(_FLOAT, rate[1])
        if periodic:
            fields["call_rate"] = float(periodic.group(1))
        if cumulative:
            fields["call_rate_cumulative"] = float(cumulative.group(1))
    for name, key in (("Successful call", "successful"), ("Failed call", "failed"),
                      ("Total Calls created", "total_calls")):
        pair = _stat_pair(name, text)
        if pair and re.fullmatch(_INT, pair[1]):
            fields[key] = int(pair[1])
    current = _stat_pair("Current Calls", text)
    if current and re.fullmatch(_INT, current[0]):
        fields["current_calls"] = int(current[0])
    return ScreenSnapshot(kind="statistics", footer=footer, text=text, **fields)  # type: ignore[arg-type]
