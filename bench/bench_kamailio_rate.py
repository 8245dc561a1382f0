"""Benchmark: the highest transfer rate the Kamailio proxy DUT sustains with < 0.1 % failures.

Each step runs uac_refer_load -> Kamailio -> uas_refer_load (INVITE/180/200/ACK, REFER/202,
two NOTIFYs, BYE: 10 messages through the proxy per transfer, all record-routed) at one
rate for a fixed time, and steps the rate up until a step fails (>= 0.1 % failed calls or
calls not completed, or under 90 % of the asked rate achieved) or the step/time budget is
spent. The "transfer" time includes the scenario's own 20 ms pause between 202 and NOTIFY. Everything runs on this machine, so
the figure includes the two SIPp instances competing with Kamailio for the CPU.

    python bench/bench_kamailio_rate.py [--rates 100,200,400,...] [--seconds 5] [--budget 300]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from referee.dut.kamailio import KamailioProxy  # noqa: E402
from referee.sipp import Sipp, run  # noqa: E402

DEFAULT_RATES = "100,200,400,600,800,1000,1200,1500,1800,2200,2600,3000"
MAX_FAILURE_RATIO = 0.001
MIN_ACHIEVED_RATIO = 0.9   # the rate is sustained only if SIPp really made ~that many calls per second


def step(proxy: KamailioProxy, rate: int, seconds: float) -> tuple[bool, str, float]:
    """One step at `rate` cps: (passed, description, achieved cps)."""
    calls = int(rate * seconds)
    with Sipp("uas_refer_load", calls=calls, timeout=seconds + 60, recv_timeout_ms=3000) as uas:
        result = run("uac_refer_load", uas.address, proxy=proxy.address, calls=calls, rate=rate,
                     max_concurrent=max(200, rate), timeout=seconds + 45, recv_timeout_ms=3000)
        uas.stop()
    failed = result.failed + max(0, calls - result.successful - result.failed)
    ratio = failed / calls
    passed = (ratio < MAX_FAILURE_RATIO and result.successful + result.failed == calls
              and result.call_rate >= MIN_ACHIEVED_RATIO * rate)
    reasons = ", ".join(f"{k}={v}" for k, v in result.failure_reasons.items()) or "-"
    text = (f"{rate:5d} cps asked: {result.call_rate:8.1f} achieved, {result.successful}/{calls} ok, "
            f"{failed} failed ({100 * ratio:.2f} %), {result.retransmissions} retransmissions, "
            f"setup {1000 * result.response_times.get('setup', 0):.1f} ms, "
            f"transfer {1000 * result.response_times.get('transfer', 0):.1f} ms; failures: {reasons}")
    return passed, text, result.call_rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default=DEFAULT_RATES, help="comma-separated rates to step through (cps)")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each step (s)")
    parser.add_argument("--budget", type=float, default=300.0, help="stop stepping after this many seconds")
    parser.add_argument("--shm", type=int, default=1024,
                        help="Kamailio shared memory (MB): transactions linger 5 s, ~70 KB per transfer")
    parser.add_argument("--children", type=int, default=2, help="Kamailio UDP worker processes")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",") if r.strip()]

    best: tuple[int, float] | None = None
    started = time.monotonic()
    with KamailioProxy(shm_mb=args.shm, children=args.children) as proxy:
        print(f"Kamailio {proxy.address[0]}:{proxy.address[1]} (children={proxy.children}, shm {args.shm} MB), "
              f"{args.seconds:g} s per step, pass = < {100 * MAX_FAILURE_RATIO:g} % failed and >= {100 * MIN_ACHIEVED_RATIO:g} % of the rate achieved",
              flush=True)
        for rate in rates:
            if time.monotonic() - started > args.budget:
                print(f"time budget of {args.budget:g} s spent; stopping", flush=True)
                break
            passed, text, achieved = step(proxy, rate, args.seconds)
            print(("PASS " if passed else "FAIL ") + text, flush=True)
            if not passed:
                errors = sorted({line.split(": ", 1)[-1] for line in proxy.log().splitlines() if "ERROR" in line})
                for line in errors[:5]:
                    print(f"     kamailio: {line}", flush=True)
                break
            best = (rate, achieved)
            if not proxy.alive():
                print("Kamailio died", flush=True)
                break
    if best is None:
        print("\nno rate passed")
        return 1
    print(f"\nhighest sustained transfer rate through Kamailio: {best[0]} cps asked, "
          f"{best[1]:.1f} cps achieved ({10 * best[1]:.0f} SIP messages/s through the proxy), "
          f"{time.monotonic() - started:.0f} s total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
