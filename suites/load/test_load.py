"""REFER under load through the DUT: one test per load step (transfer kind x call rate).

Each step: SIPp plays transferor, transferee and target of `rate x duration` transfers through
the DUT (load_step.py); meanwhile referee's own agents make a few transfers of the same kind
through the same DUT and check them in full (load_samples.py). The step passes when every
criterion holds:

    failed SIPp calls (all parties)     <= --load-max-failed  %
    REFER -> 202, 95th percentile       <= --load-p95-202-ms
    REFER -> final NOTIFY, 95th pct     <= --load-p95-notify-ms
    call rate achieved                  >= --load-min-rate  % of the rate asked
    every agent sample passed, and the DUT is still running

Figures go to <report-dir>/load-junit.xml (one test case per step) and to pytest's JUnit as
properties; the SIPp files of each step stay in <report-dir>/load/<step>/.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from load_figures import percentile
from load_junit import StepRecord
from load_options import rates_for_collection, resolve, LoadSettingsError
from load_samples import SAMPLE_CEILING, LoadDut, SampleResult, run_sample
from load_step import DRAIN_S, GRACE_S, KINDS, StepRun, run_step
from referee.sipp import SippError

pytestmark = pytest.mark.load


def _budget(config, rate: float) -> float:
    """Seconds a step may take in all (the pytest-timeout of its test)."""
    try:
        settings = resolve(config)
        duration, hold, samples = settings.duration, settings.hold_ms / 1000, settings.samples
    except LoadSettingsError:
        duration, hold, samples = 5.0, 1.0, 3
    return duration + hold + DRAIN_S + 6 * GRACE_S + samples * SAMPLE_CEILING + 60


def pytest_generate_tests(metafunc) -> None:
    if "step" not in metafunc.fixturenames:
        return
    rates = rates_for_collection(metafunc.config)
    metafunc.parametrize("step", [
        pytest.param((kind, rate), id=f"{kind}-{rate:g}cps",
                     marks=pytest.mark.timeout(_budget(metafunc.config, rate)))
        for kind in KINDS for rate in rates])


def test_refer_load(step, load_settings, load_dut, load_report, request, record_property) -> None:
    kind, rate = step
    settings = load_settings
    transfers = settings.calls_for(rate)
    step_dir = request.config.referee_report_dir / "load" / f"{kind}-{rate:g}cps"
    load_window = transfers / rate
    samples: list[SampleResult] = []

    def during(transferor) -> None:
        """The agents' samples, spread over the time new calls are being started."""
        samples.extend(asyncio.run(_samples(kind, settings.samples, load_window, load_dut, request.config)))

    base = {"kind": kind, "dut": load_dut.name, "dut_address": f"{load_dut.address[0]}:{load_dut.address[1]}"}
    if load_dut.note:
        base["dut_note"] = load_dut.note
    t0 = time.monotonic()
    try:
        run = run_step(kind, rate, transfers, settings.hold_ms, load_dut.address, step_dir, during)
    except SippError as exc:
        load_report.add(StepRecord(kind, rate, time.monotonic() - t0, base, [], error=f"SIPp failed: {exc}"))
        pytest.fail(f"{kind} load at {rate:g} cps could not run: {exc}", pytrace=False)
    except Exception as exc:     # recorded in load-junit.xml too, then reported by pytest as it is
        load_report.add(StepRecord(kind, rate, time.monotonic() - t0, base, [],
                                   error=f"{type(exc).__name__}: {exc}"))
        raise

    figures = {**base, **_figures(run, samples, settings)}
    failures = _criteria(run, samples, settings, load_dut.alive())
    details = _details(run, samples, load_dut)
    _keep_files(step_dir, run, samples, details, passed=not failures)
    load_report.add(StepRecord(kind, rate, run.wall_s, figures, failures, details))
    for name, value in figures.items():
        record_property(name, "n/a" if value is None else value)
    if failures:
        pytest.fail(f"{kind} load at {rate:g} cps through {load_dut.name}: " + "; ".join(failures)
                    + "\n\n" + details, pytrace=False)


async def _samples(kind: str, count: int, window: float, target, config) -> list[SampleResult]:
    dut = LoadDut(target.name, target.address)
    start = time.monotonic()
    results = []
    for index in range(1, count + 1):
        due = start + window * index / (count + 1)
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        results.append(await run_sample(kind, index, dut, policy=config.referee_policy))
    return results


def _figures(run: StepRun, samples: list[SampleResult], settings) -> dict[str, object]:
    measured = run.figures.summary() if run.figures else {}
    load_end = run.started + run.transfers / run.rate
    out: dict[str, object] = {
        "rate_asked_cps": run.rate,
        "rate_achieved_cps": measured.get("rate_achieved_cps"),
        "duration_s": settings.duration,
        "hold_ms": settings.hold_ms,
        "transfers_asked": run.transfers,
        "transfers_completed": run.transfers_completed,
        "calls_expected": run.calls_expected,
        "calls_failed": run.calls_failed,
        "failed_pct": round(run.failed_pct, 3),
        "retransmissions": run.retransmissions,
        "concurrent_calls_max": measured.get("concurrent_calls_max"),
    }
    for key in ("refer_202_samples", "refer_202_p50_ms", "refer_202_p95_ms", "refer_202_max_ms",
                "final_notify_samples", "final_notify_p50_ms", "final_notify_p95_ms", "final_notify_max_ms"):
        out[key] = measured.get(key)
    out.update({
        "agent_samples": len(samples),
        "agent_samples_passed": sum(1 for s in samples if s.passed),
        "agent_samples_during_load": sum(1 for s in samples if s.ended <= load_end),
        "agent_refer_202_max_ms": _max([s.accept_ms for s in samples]),
        "agent_final_notify_max_ms": _max([s.notify_ms for s in samples]),
    })
    for party in run.parties:
        out[f"sipp_{party.party.replace('-', '_')}"] = f"{party.successful}/{party.expected} successful"
    out.update({
        "criterion_max_failed_pct": settings.max_failed_pct,
        "criterion_p95_202_ms": settings.p95_202_ms,
        "criterion_p95_notify_ms": settings.p95_notify_ms,
        "criterion_min_rate_pct": settings.min_rate_pct,
        "wall_s": round(run.wall_s, 3),
    })
    return out


def _max(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _criteria(run: StepRun, samples: list[SampleResult], settings, dut_alive: bool) -> list[str]:
    """Every pass criterion the step did not meet (empty: passed)."""
    failures = []
    if run.failed_pct > settings.max_failed_pct:
        failures.append(f"{run.calls_failed} of {run.calls_expected} SIPp calls failed or did not complete "
                        f"({run.failed_pct:.2f} % > {settings.max_failed_pct:g} %)")
    figures = run.figures
    accept = figures.accept_ms if figures else []
    notify = figures.notify_ms if figures else []
    p95_accept, p95_notify = percentile(accept, 95), percentile(notify, 95)
    if p95_accept is None:
        failures.append("no REFER was answered 202: no 202 latency measured")
    elif p95_accept > settings.p95_202_ms:
        failures.append(f"REFER -> 202 p95 {p95_accept:.1f} ms > {settings.p95_202_ms:g} ms")
    if p95_notify is None:
        failures.append("no final NOTIFY arrived: no NOTIFY latency measured")
    elif p95_notify > settings.p95_notify_ms:
        failures.append(f"REFER -> final NOTIFY p95 {p95_notify:.1f} ms > {settings.p95_notify_ms:g} ms")
    achieved = figures.rate_achieved if figures else None
    if achieved is not None and achieved < settings.min_rate_pct / 100 * run.rate:
        failures.append(f"call rate achieved {achieved:.1f} cps < {settings.min_rate_pct:g} % of "
                        f"{run.rate:g} cps asked")
    elif achieved is None and run.transfers >= 2:
        failures.append("the call rate achieved could not be measured (fewer than two calls started)")
    failed = [s for s in samples if not s.passed]
    if failed:
        failures.append(f"{len(failed)} of {len(samples)} agent sample transfers failed (first: "
                        f"{failed[0].failure.splitlines()[0]})")
    if len(samples) < settings.samples:
        failures.append(f"only {len(samples)} of {settings.samples} agent samples ran")
    if not dut_alive:
        failures.append("the DUT is no longer running")
    return failures


def _details(run: StepRun, samples: list[SampleResult], target) -> str:
    lines = ["SIPp parties:"] + [f"  {p.describe()}" for p in run.parties]
    if samples:
        lines.append("agent samples:")
        for s in samples:
            lines.append(f"  {s.kind} #{s.index}: " + ("passed" if s.passed else f"FAILED: {s.failure}"))
    if not target.alive():
        lines.append("DUT output (last lines):")
        lines += [f"  {line}" for line in target.output().splitlines()[-20:]]
    return "\n".join(lines)


def _keep_files(step_dir, run: StepRun, samples: list[SampleResult], details: str, passed: bool) -> None:
    """summary.txt and the samples' traces stay; the per-message log only when the step failed."""
    step_dir.mkdir(parents=True, exist_ok=True)
    (step_dir / "summary.txt").write_text(details + "\n")
    for sample in samples:
        (step_dir / f"sample-{sample.index}.json").write_text(json.dumps(sample.trace, indent=1, default=str))
    if passed:
        for path in step_dir.glob("*/*_shortmessages.log"):
            path.unlink()
