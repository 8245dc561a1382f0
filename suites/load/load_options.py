"""The load suite's settings: command line options, the profile's [load] table, defaults.

A setting comes from the command line if given there, else from the DUT profile's `[load]`
table (when the profile loader provides one as `profile.load`), else from the default below.
Values are checked when parsed: a load run never starts without a positive rate, a bounded
duration and a bounded number of calls.
"""

from __future__ import annotations

import argparse
import dataclasses
import math

GROUP = "referee-load"
MAX_DURATION = 24 * 3600.0      # seconds: no single step runs longer
MAX_RATE = 5000.0               # calls per second


def _positive(text: str, what: str, maximum: float) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0 or value > maximum:
        raise argparse.ArgumentTypeError(f"{what} must be > 0 and <= {maximum:g}, got {text!r}")
    return value


def parse_rates(text: str) -> tuple[float, ...]:
    """'20' or '10,20,40': the call rates (cps) of the steps, each run in turn."""
    parts = [p.strip() for p in str(text).split(",")]
    if not parts or any(not p for p in parts):
        raise argparse.ArgumentTypeError(f"rate list must be numbers separated by commas, got {text!r}")
    return tuple(_positive(p, "call rate (cps)", MAX_RATE) for p in parts)


def parse_duration(text: str) -> float:
    return _positive(text, "duration (s)", MAX_DURATION)


def parse_percent(text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"percentage must be a number, got {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"percentage must be within 0..100, got {text!r}")
    return value


def parse_ms(text: str) -> float:
    return _positive(text, "milliseconds", 3_600_000)


def parse_count(text: str) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Option:
    flag: str
    key: str            # the LoadSettings field, and the key in the profile's [load] table
    parse: object
    default: object
    help: str


OPTIONS = (
    Option("--load-rate", "rate", parse_rates, "20",
           "call rate of the load steps in calls per second; a comma-separated list runs one step per "
           "rate (default 20)"),
    Option("--load-duration", "duration", parse_duration, "5",
           "seconds during which each step starts new calls (default 5)"),
    Option("--load-max-failed", "max_failed_pct", parse_percent, "0.1",
           "a step fails when more than this percentage of its SIPp calls failed or did not complete "
           "(default 0.1)"),
    Option("--load-p95-202-ms", "p95_202_ms", parse_ms, "500",
           "a step fails when the 95th percentile of REFER -> 202 Accepted exceeds this (ms, default 500)"),
    Option("--load-p95-notify-ms", "p95_notify_ms", parse_ms, "2000",
           "a step fails when the 95th percentile of REFER -> final NOTIFY exceeds this (ms, default 2000)"),
    Option("--load-min-rate", "min_rate_pct", parse_percent, "90",
           "a step fails when the call rate achieved is under this percentage of the rate asked "
           "(default 90)"),
    Option("--load-hold-ms", "hold_ms", parse_ms, "1000",
           "how long each call is up before it is transferred; with the rate it sets how many calls "
           "are up at once (ms, default 1000)"),
    Option("--load-samples", "samples", parse_count, "3",
           "transfers made by referee's own agents through the DUT in the middle of each step, each "
           "checked in full (default 3)"),
    Option("--load-max-calls", "max_calls", parse_count, "20000",
           "refuse a step that would start more calls than this (rate x duration; default 20000)"),
)


def add_load_options(parser) -> None:
    """Register the --load-* options (once: a second call finds them and does nothing)."""
    group = parser.getgroup(GROUP, "referee load suite (referee run -m load)")
    known = {name for option in group.options for name in option.names()}
    if OPTIONS[0].flag in known:
        return
    for option in OPTIONS:
        group.addoption(option.flag, dest=option.flag[2:].replace("-", "_"), default=None,
                        type=option.parse, metavar=option.key.upper(), help=option.help)


def pytest_addoption(parser) -> None:
    """So that this module can be loaded as a pytest plugin (`pytest_plugins` of the root
    conftest.py), which makes the options known whatever paths the command line names."""
    add_load_options(parser)


@dataclasses.dataclass(frozen=True)
class LoadSettings:
    rate: tuple[float, ...]
    duration: float
    max_failed_pct: float
    p95_202_ms: float
    p95_notify_ms: float
    min_rate_pct: float
    hold_ms: float
    samples: int
    max_calls: int
    sources: dict[str, str]     # setting -> 'command line' | 'profile [load]' | 'default'

    def calls_for(self, rate: float) -> int:
        return max(1, math.ceil(rate * self.duration))


class LoadSettingsError(ValueError):
    """Settings that would start an unbounded or meaningless load run."""


def resolve(config) -> LoadSettings:
    """The settings of this run; raises LoadSettingsError naming the option or profile key."""
    profile = getattr(config, "referee_profile", None)
    table = getattr(profile, "load", None) or {}
    where = f"{getattr(profile, 'path', 'profile')}: [load]"
    if not isinstance(table, dict):
        raise LoadSettingsError(f"{where} must be a table")
    known = {o.key for o in OPTIONS}
    unknown = sorted(set(table) - known)
    if unknown:
        raise LoadSettingsError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for option in OPTIONS:
        given = config.getoption(option.flag[2:].replace("-", "_"), default=None)
        if given is not None:
            values[option.key], sources[option.key] = given, "command line"
            continue
        if option.key in table:
            raw = table[option.key]
            if option.key == "rate" and isinstance(raw, list):
                raw = ",".join(str(r) for r in raw)
            try:
                values[option.key] = option.parse(str(raw))     # type: ignore[operator]
            except argparse.ArgumentTypeError as exc:
                raise LoadSettingsError(f"{where} key '{option.key}': {exc}") from None
            sources[option.key] = "profile [load]"
            continue
        values[option.key], sources[option.key] = option.parse(option.default), "default"  # type: ignore[operator]
    settings = LoadSettings(sources=sources, **values)     # type: ignore[arg-type]
    if settings.max_calls < 1:
        raise LoadSettingsError("--load-max-calls must be at least 1")
    for rate in settings.rate:
        calls = settings.calls_for(rate)
        if calls > settings.max_calls:
            raise LoadSettingsError(
                f"a step at {rate:g} cps for {settings.duration:g} s would start {calls} calls, more than "
                f"--load-max-calls {settings.max_calls}; lower the rate or the duration, or raise the bound")
    return settings


def rates_for_collection(config) -> tuple[float, ...]:
    """The step rates to parametrize the tests with (the defaults if the settings are invalid:
    the settings fixture then refuses to start and says why)."""
    try:
        return resolve(config).rate
    except LoadSettingsError:
        return parse_rates(OPTIONS[0].default)     # type: ignore[arg-type]
