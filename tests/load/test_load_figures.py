"""The load suite's own arithmetic: SIPp's short message log -> latencies, rate, concurrency;
and the settings that bound a run."""

from __future__ import annotations

import argparse
import pathlib
import sys
import types

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "suites" / "load"))

from load_figures import achieved_rate, max_concurrent, percentile, read_shortmsg, transferor_figures  # noqa: E402
from load_options import LoadSettingsError, parse_percent, parse_rates, resolve  # noqa: E402

# two calls of uac_transferor_blind as SIPp 3.6.1 logs them with -trace_shortmsg (tab-separated)
SHORTMSG = """\
2026-01-01\t12:00:00.000000\t1000.000000\tS\t1-7@127.0.0.1\tCSeq:1 INVITE\tINVITE sip:service@127.0.0.1:5062 SIP/2.0
2026-01-01\t12:00:00.010000\t1000.010000\tR\t1-7@127.0.0.1\tCSeq:1 INVITE\tSIP/2.0 200 OK
2026-01-01\t12:00:00.011000\t1000.011000\tS\t1-7@127.0.0.1\tCSeq:1 ACK\tACK sip:bob@127.0.0.1:5062 SIP/2.0
2026-01-01\t12:00:00.100000\t1000.100000\tS\t1-7@127.0.0.1\tCSeq:2 REFER\tREFER sip:bob@127.0.0.1:5062 SIP/2.0
2026-01-01\t12:00:00.102000\t1000.102000\tR\t1-7@127.0.0.1\tCSeq:2 REFER\tSIP/2.0 202 Accepted
2026-01-01\t12:00:00.130000\t1000.130000\tR\t1-7@127.0.0.1\tCSeq:1 NOTIFY\tNOTIFY sip:alice@127.0.0.1:5061 SIP/2.0
2026-01-01\t12:00:00.131000\t1000.131000\tS\t1-7@127.0.0.1\tCSeq:1 NOTIFY\tSIP/2.0 200 OK
2026-01-01\t12:00:00.050000\t1000.050000\tS\t2-7@127.0.0.1\tCSeq:1 INVITE\tINVITE sip:service@127.0.0.1:5062 SIP/2.0
2026-01-01\t12:00:00.200000\t1000.200000\tR\t1-7@127.0.0.1\tCSeq:2 NOTIFY\tNOTIFY sip:alice@127.0.0.1:5061 SIP/2.0
2026-01-01\t12:00:00.700000\t1000.700000\tR\t1-7@127.0.0.1\tCSeq:2 NOTIFY\tNOTIFY sip:alice@127.0.0.1:5061 SIP/2.0
2026-01-01\t12:00:00.201000\t1000.201000\tS\t1-7@127.0.0.1\tCSeq:2 NOTIFY\tSIP/2.0 200 OK
2026-01-01\t12:00:00.060000\t1000.060000\tR\t2-7@127.0.0.1\tCSeq:1 INVITE\tSIP/2.0 200 OK
2026-01-01\t12:00:00.160000\t1000.160000\tS\t2-7@127.0.0.1\tCSeq:2 REFER\tREFER sip:bob@127.0.0.1:5062 SIP/2.0
2026-01-01\t12:00:00.660000\t1000.660000\tS\t2-7@127.0.0.1\tCSeq:2 REFER\tREFER sip:bob@127.0.0.1:5062 SIP/2.0
2026-01-01\t12:00:00.661000\t1000.661000\tR\t2-7@127.0.0.1\tCSeq:2 REFER\tSIP/2.0 202 Accepted
not a shortmsg line
2026-01-01\t12:00:00.900000\t1000.900000\tS\t1-7@127.0.0.1\tCSeq:3 BYE\tBYE sip:bob@127.0.0.1:5062 SIP/2.0
"""


def test_shortmsg_gives_per_call_latencies(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "transferor_7_shortmessages.log"
    path.write_text(SHORTMSG)
    calls = read_shortmsg(path)
    assert set(calls) == {"1-7@127.0.0.1", "2-7@127.0.0.1"}
    first, second = calls["1-7@127.0.0.1"], calls["2-7@127.0.0.1"]
    assert first.accept_ms == pytest.approx(2.0)
    # the final NOTIFY is the one with the highest CSeq, at its first arrival (not its retransmission)
    assert first.notify_ms == pytest.approx(100.0)
    # a retransmitted REFER: latency from the first transmission; no NOTIFY yet: none measured
    assert second.accept_ms == pytest.approx(501.0) and second.notify_ms is None
    figures = transferor_figures(calls)
    assert figures.calls_seen == 2 and figures.concurrent_max == 2
    assert figures.rate_achieved == pytest.approx(1 / 0.05)
    assert sorted(figures.accept_ms) == pytest.approx([2.0, 501.0])


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 95) == 95.0 and percentile(values, 50) == 50.0
    assert percentile([7.0], 95) == 7.0 and percentile([], 95) is None
    assert percentile([1.0, 1000.0], 95) == 1000.0


def test_rate_and_concurrency() -> None:
    assert achieved_rate([0.0, 0.5, 1.0]) == pytest.approx(2.0)
    assert achieved_rate([3.0]) is None
    assert max_concurrent([(0, 10), (1, 2), (3, 4), (3.5, 5)]) == 3
    assert max_concurrent([]) == 0


def _config(profile_load=None, **given):
    """A stand-in for pytest's config: getoption() and the profile's [load] table."""
    profile = types.SimpleNamespace(path="duts/x.toml", load=profile_load)
    return types.SimpleNamespace(referee_profile=profile, getoption=lambda name, default=None: given.get(name))


def test_settings_come_from_the_command_line_then_the_profile_then_the_defaults() -> None:
    settings = resolve(_config({"rate": [5, 10], "p95_202_ms": 50}, load_duration=2.0))
    assert settings.rate == (5.0, 10.0) and settings.duration == 2.0 and settings.p95_202_ms == 50.0
    assert settings.max_failed_pct == 0.1
    assert settings.sources["duration"] == "command line" and settings.sources["rate"] == "profile [load]"
    assert settings.sources["max_failed_pct"] == "default"
    assert settings.calls_for(5.0) == 10


def test_settings_refuse_a_run_without_bounds() -> None:
    for bad in ("0", "-1", "inf", "nan", "x", "10,", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_rates(bad)
    with pytest.raises(argparse.ArgumentTypeError):
        parse_percent("101")
    with pytest.raises(LoadSettingsError, match="would start 100000 calls"):
        resolve(_config(load_rate=(1000.0,), load_duration=100.0))
    with pytest.raises(LoadSettingsError, match=r"duts/x.toml: \[load\] key 'duration'"):
        resolve(_config({"duration": 0}))
    with pytest.raises(LoadSettingsError, match="unknown key"):
        resolve(_config({"rates": 10}))
