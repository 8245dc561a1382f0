"""Whole-run figures of `referee run`: wall time against the longest test, and the harness cost
per test.

    python bench/bench_suite.py [--dut duts/x.toml] [-k EXPR] [--workers N] [--runs R]
                                [--compare-serial] [--keep DIR]

Each run is a real `referee run` into a scratch report directory. Printed per run:
  - the run's wall time, its longest test (JUnit time) and their ratio;
  - the harness cost per test (median, p95, max) and the tests that cost the most;
and, with --runs R > 1, whether the R runs gave every test the same verdict.
With --compare-serial, each run is followed by a serial run (one test at a time) of the same
selection, and the two are compared (ratios from one invocation, on the same machine load).

Harness cost of a test = its JUnit time (setup + call + teardown) minus the time its flow
spent on the protocol, taken from its trace.json: the union of
  - the span from its first to its last SIP message,
  - its quiet windows: `expect_none` and `wait` steps, library checks that watch for an absence
    or observe media on purpose (WAITING_CHECKS), the quiet time that ends a `collect` step
    with until: quiet, and the wait of a step that failed because nothing came (its timeout:
    the verdict is that absence).
Tests without a trace.json (N/A, broken files) are left out of the harness figures.

Figures only; nothing here passes or fails (the machine is shared: the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

REPO = pathlib.Path(__file__).resolve().parents[1]

# library steps that wait on purpose: for an absence, for media over a window, for a NAT binding
# to expire (referee/checks: their `within`, `window`, `seconds` arguments)
WAITING_CHECKS = {"refer_not_acted_on", "no_notify_without_subscription", "media_only_to", "talking",
                  "out_of_dialog_transfer", "nat_idle"}
_LIBRARY = re.compile(r"\[(?:check|action) ([A-Za-z0-9_]+)\]$")


def referee_command() -> list[str]:
    """`referee` of this checkout (run from it, with it first on the path)."""
    return [sys.executable, "-m", "referee.cli"]


def run_once(report_dir: pathlib.Path, args, workers: int | None) -> dict:
    """One `referee run`; its wall time, and per test (name, JUnit seconds, outcome, trace path)."""
    cmd = referee_command() + ["run", "--report-dir", str(report_dir)]
    if args.dut:
        cmd += ["--dut", args.dut]
    if args.keyword:
        cmd += ["-k", args.keyword]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    started = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=1800)
    wall = time.perf_counter() - started
    junit = report_dir / "junit.xml"
    if not junit.exists():
        sys.exit(f"bench: `{' '.join(cmd)}` wrote no junit.xml (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
    return {"wall": wall, "exit": proc.returncode, "tests": read_junit(junit)}


def read_junit(path: pathlib.Path) -> list[dict]:
    tests = []
    for case in ET.parse(path).iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        outcome = props.get("verdict")
        if outcome is None:
            outcome = next((tag for tag in ("failure", "error", "skipped") if case.find(tag) is not None), "passed")
        tests.append({"name": case.get("name"), "seconds": float(case.get("time") or 0.0),
                      "outcome": outcome, "trace": props.get("trace")})
    return tests


def protocol_seconds(trace: dict) -> float:
    """Seconds of the flow that belong to the protocol: first-to-last SIP message, plus quiet windows."""
    times = sorted(m["time"] for m in trace.get("messages", []))
    intervals = []
    if times:
        intervals.append((times[0], times[-1]))
    for step in trace.get("steps", []):
        start, end = step["started"], step["ended"]
        description = step.get("description", "")
        library = _LIBRARY.search(description)
        if " expects no " in description or re.match(r"wait [0-9.]+ s$", description) \
                or (library and library.group(1) in WAITING_CHECKS):
            intervals.append((start, end))
            continue
        quiet_collect = " collects every " in description and "up to the final one" not in description
        if quiet_collect or step.get("status") == "failed":
            before = [t for t in times if start <= t <= end]
            intervals.append((before[-1] if before else start, end))
    return union_length(intervals)


def union_length(intervals: list[tuple[float, float]]) -> float:
    total, current = 0.0, None
    for start, end in sorted(intervals):
        if current is None or start > current[1]:
            if current is not None:
                total += current[1] - current[0]
            current = [start, end]
        else:
            current[1] = max(current[1], end)
    if current is not None:
        total += current[1] - current[0]
    return total


def harness_costs(tests: list[dict]) -> list[tuple[float, str]]:
    costs = []
    for test in tests:
        if not test["trace"] or not os.path.exists(test["trace"]):
            continue
        try:
            trace = json.loads(pathlib.Path(test["trace"]).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        costs.append((test["seconds"] - protocol_seconds(trace), test["name"]))
    return sorted(costs)


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def summarize(label: str, result: dict) -> dict:
    tests = result["tests"]
    longest = max(tests, key=lambda t: t["seconds"])
    costs = harness_costs(tests)
    values = [c for c, _ in costs]
    outcomes: dict[str, int] = {}
    for t in tests:
        outcomes[t["outcome"]] = outcomes.get(t["outcome"], 0) + 1
    figures = {"wall": result["wall"], "longest": longest["seconds"], "ratio": result["wall"] / longest["seconds"],
               "median": statistics.median(values) if values else 0.0,
               "p95": percentile(values, 0.95) if values else 0.0, "sum": sum(t["seconds"] for t in tests)}
    print(f"{label}: wall {result['wall']:.1f} s; longest test {longest['name']} {longest['seconds']:.1f} s; "
          f"ratio {figures['ratio']:.2f}; sum of test times {figures['sum']:.1f} s; exit {result['exit']}; "
          + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())))
    if values:
        print(f"    harness cost per test ({len(values)} tests with a trace): median {figures['median'] * 1e3:.0f} ms, "
              f"p95 {figures['p95'] * 1e3:.0f} ms, max {values[-1] * 1e3:.0f} ms")
        print("    most: " + ", ".join(f"{name} {cost * 1e3:.0f} ms" for cost, name in costs[-5:][::-1]))
    return figures


def determinism(verdict_lists: list[dict[str, str]]) -> str:
    """Do the runs agree on every test's verdict? (The JUnit verdict lists compared.)"""
    names = sorted(set().union(*verdict_lists))
    differ = {n: [v.get(n, "not run") for v in verdict_lists] for n in names
              if len({v.get(n, "not run") for v in verdict_lists}) > 1}
    if not differ:
        return f"verdicts: identical in all {len(verdict_lists)} runs ({len(names)} tests)"
    return (f"verdicts: {len(differ)} of {len(names)} tests differ between the {len(verdict_lists)} runs:\n"
            + "\n".join(f"    {n}: {' '.join(v)}" for n, v in differ.items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dut", help="DUT profile (default: the built-in reference phone)")
    ap.add_argument("-k", dest="keyword", help="only tests matching this expression")
    ap.add_argument("--workers", type=int, default=None,
                    help="tests at a time (default: what `referee run` picks for the DUT)")
    ap.add_argument("--runs", type=int, default=1, help="how many runs (default 1)")
    ap.add_argument("--compare-serial", action="store_true", help="also a serial run after each run")
    ap.add_argument("--keep", metavar="DIR", help="keep the report directories under DIR")
    args = ap.parse_args(argv)
    base = pathlib.Path(args.keep) if args.keep else pathlib.Path(tempfile.mkdtemp(prefix="referee-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} cpus")
    verdict_lists: list[dict[str, str]] = []
    try:
        for n in range(1, args.runs + 1):
            result = run_once(base / f"run{n}", args, args.workers)
            verdict_lists.append({t["name"]: t["outcome"] for t in result["tests"]})
            figures = summarize(f"run {n}" + (f" ({args.workers} workers)" if args.workers else ""), result)
            if args.compare_serial:
                serial = summarize(f"run {n} serial", run_once(base / f"serial{n}", args, 1))
                print(f"    parallel/serial: wall {figures['wall'] / serial['wall']:.2f}, "
                      f"harness median {figures['median'] / serial['median'] if serial['median'] else 0:.2f}")
            print(f"    load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if len(verdict_lists) > 1:
            print(determinism(verdict_lists))
    finally:
        if not args.keep:
            import shutil
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
