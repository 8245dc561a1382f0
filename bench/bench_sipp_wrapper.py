"""Benchmark: call rate SIPp achieves under the pexpect wrapper vs. bare SIPp (subprocess).

Both runs play the same scenario (uac_refer_load: INVITE, REFER, two NOTIFYs, BYE) against
the same uas_refer_load instance. They ask for far more calls per second than SIPp can make
but cap the simultaneous calls (-l), so SIPp runs flat out without overloading its sockets,
and the achieved rate is read from SIPp's own statistics file. The wrapper adds a pty, a
reader thread and screen parsing; this shows what that costs. Rounds alternate the two.

    python bench/bench_sipp_wrapper.py [--calls 10000] [--rate 20000] [--limit 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from referee.sipp import Sipp, find_sipp, render, run  # noqa: E402
from referee.sipp.ports import free_media_port, free_port  # noqa: E402
from referee.sipp.stats import read_stat_csv  # noqa: E402

# no spacing pauses: SIPp talks to SIPp directly, nothing can reorder the messages
UAC_PARAMS = {"hold_ms": 0, "bye_delay_ms": 0}
UAS_PARAMS = {"notify_delay_ms": 0}


def bare_run(remote: tuple[str, int], calls: int, rate: int, limit: int, timeout: float) -> tuple[float, int, int]:
    """SIPp as a plain subprocess (no terminal): (achieved cps, successful, failed)."""
    work = Path(tempfile.mkdtemp(prefix="bench-bare-sipp-"))
    scenario = render("uac_refer_load", UAC_PARAMS, work / "uac_refer_load.xml")
    stats = work / "stats.csv"
    command = [find_sipp(), f"{remote[0]}:{remote[1]}", "-sf", str(scenario), "-i", "127.0.0.1",
               "-p", str(free_port()), "-mi", "127.0.0.1", "-mp", str(free_media_port()),
               "-ci", "127.0.0.1", "-m", str(calls), "-r", str(rate), "-l", str(limit),
               "-recv_timeout", "2000ms", "-timeout", f"{int(timeout)}s", "-nostdin",
               "-trace_stat", "-stf", str(stats), "-fd", "1"]
    try:
        subprocess.run(command, cwd=work, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=timeout + 15, check=False)
        last = read_stat_csv(stats)[-1]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return last.call_rate, last.successful, last.failed


def wrapped_run(remote: tuple[str, int], calls: int, rate: int, limit: int, timeout: float) -> tuple[float, int, int]:
    """The same run through referee.sipp (pexpect, screen following)."""
    result = run("uac_refer_load", remote, calls=calls, rate=rate, max_concurrent=limit, timeout=timeout,
                 recv_timeout_ms=2000, params=UAC_PARAMS)
    return result.call_rate, result.successful, result.failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10000, help="calls per run")
    parser.add_argument("--rate", type=int, default=20000, help="call rate asked for (cps)")
    parser.add_argument("--limit", type=int, default=20, help="max simultaneous calls (-l)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of both runs")
    parser.add_argument("--timeout", type=float, default=60.0, help="wall-clock bound of each run (s)")
    args = parser.parse_args()

    bare: list[float] = []
    wrapped: list[float] = []
    started = time.monotonic()
    with Sipp("uas_refer_load", params=UAS_PARAMS, timeout=args.rounds * 2 * (args.timeout + 20)) as uas:
        for round_no in range(1, args.rounds + 1):
            for label, runner, bucket in (("bare   ", bare_run, bare), ("wrapper", wrapped_run, wrapped)):
                cps, ok, failed = runner(uas.address, args.calls, args.rate, args.limit, args.timeout)
                bucket.append(cps)
                print(f"round {round_no} {label}: {cps:8.1f} cps achieved ({ok} successful, {failed} failed)",
                      flush=True)
    best_bare, best_wrapped = max(bare), max(wrapped)
    print(f"\nscenario uac_refer_load <-> uas_refer_load, {args.calls} calls/run, asked {args.rate} cps, "
          f"-l {args.limit}, {args.rounds} round(s), {time.monotonic() - started:.0f} s total")
    print(f"bare SIPp (subprocess):   best {best_bare:8.1f} cps  median {statistics.median(bare):8.1f} cps")
    print(f"SIPp under pexpect:       best {best_wrapped:8.1f} cps  median {statistics.median(wrapped):8.1f} cps")
    print(f"ratio wrapper/bare (best): {best_wrapped / best_bare:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
