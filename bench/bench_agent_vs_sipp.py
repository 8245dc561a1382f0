"""Benchmark: referee's Agent vs SIPp as the transferor of the same blind transfer, same peer.

The transferor's flow: INVITE / 200 / ACK, REFER / 202, NOTIFY 100 (answered 200), NOTIFY 200
terminated (answered 200), BYE / 200. The peer is the same for both drivers and is restarted
for each run: the SIPp transferee pair (uas_transferee + uac_transferee_newcall, which calls the
target on every REFER) and the SIPp target (uas_target) - optionally all through Kamailio.

Both drivers run `--flows` transfers with at most `--concurrency` in flight, as fast as they can:
  * SIPp: uac_transferor_blind with -m FLOWS, -l CONCURRENCY and a call rate far above what it
    can reach; flows/s = SIPp's own measured call rate (its statistics file) x the share of
    calls that succeeded.
  * Agent: CONCURRENCY transferor Agents (one asyncio loop, one socket each), each running
    flows one after the other until FLOWS ran; flows/s = successful flows / wall-clock time.
Every message a flow needs is checked by each driver (202, sipfrag 100 then 200, terminated);
a flow that fails is not counted. Rounds alternate the two drivers. Everything runs on this
machine, so the peer (three SIPp) competes with the driver for the CPU.

    python bench/bench_agent_vs_sipp.py [--flows 2000] [--concurrency 20,50] [--rounds 2] [--via-kamailio]

The verdict compares the best rate of each driver over every concurrency level: with few flows
in flight SIPp is bound by the peer's latency, not by its own speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from referee.agent import Agent, ExpectationFailed  # noqa: E402
from referee.dut.kamailio import KamailioProxy  # noqa: E402
from referee.sipp import Sipp, SippTimeout, free_port  # noqa: E402
from referee.sipp.stats import read_stat_csv  # noqa: E402

GOAL = 0.5             # the Agent should make at least half of SIPp's flows per second
STEP_TIMEOUT = 5.0     # seconds any one expected message may take
TRANSFEREE = {"bye_wait_ms": 2000}
NEWCALL = {"talk_ms": 1}
TARGET = {"hold_ms": 3000}
# the SIPp transferor pauses no more than the Agent does: REFER right after ACK, BYE right
# after the final NOTIFY
TRANSFEROR = {"refer_delay_ms": 0, "bye_wait_ms": 1}
# the peer: without a proxy in between nothing can reorder the messages, so no spacing pauses
# then; through Kamailio the peer keeps them (see scenarios/sipp/README.md)
DIRECT = {"transferee": {"notify_delay_ms": 0}, "target": {"ring_ms": 0}}


def params(party: str, base: dict, proxy) -> dict:
    return {**base, **({} if proxy else DIRECT.get(party, {}))}


@contextlib.contextmanager
def peer(flows: int, proxy: tuple[str, int] | None, budget: float):
    """The transferee pair and the target for `flows` transfers; yields (transferee, target URI)."""
    started: list[Sipp] = []
    try:
        target = Sipp("uas_target", calls=flows, params=params("target", TARGET, proxy), timeout=budget)
        started.append(target.start())
        twin = ("127.0.0.1", free_port(udp=False, tcp=True))
        newcall = Sipp("uac_transferee_newcall", target.address, twin=twin, proxy=proxy, calls=flows,
                       params=NEWCALL, timeout=budget)
        started.append(newcall.start())
        transferee = Sipp("uas_transferee", twin=twin, calls=flows, params=params("transferee", TRANSFEREE, proxy),
                          timeout=budget)
        started.append(transferee.start())
        yield transferee.address, f"sip:carol@127.0.0.1:{target.port}"
    finally:
        for sipp in reversed(started):
            with contextlib.suppress(SippTimeout):
                sipp.wait(3.0)
            sipp.stop()


def sipp_run(flows: int, concurrency: int, proxy, budget: float) -> tuple[float, int]:
    """(flows/s, successful flows) with SIPp as the transferor."""
    work = Path(tempfile.mkdtemp(prefix="bench-agent-vs-sipp-"))
    try:
        with peer(flows, proxy, budget + 10) as (transferee, target_uri):
            sipp = Sipp("uac_transferor_blind", transferee, proxy=proxy, calls=flows, rate=100000,
                        max_concurrent=concurrency, timeout=budget, recv_timeout_ms=5000, work_dir=work,
                        params={**params("transferor", TRANSFEROR, proxy), "refer_to": f"<{target_uri}>"})
            sipp.start()
            result = sipp.wait()
        # CallRate(C): calls created per second of SIPp's own run time (millisecond clock; the
        # ElapsedTime column has whole seconds only); with -l the calls are created as fast as
        # they end, so times the share that succeeded it is the flows per second
        last = read_stat_csv(work / "stats.csv")[-1]
        return last.call_rate * last.successful / max(last.created, 1), result.successful
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def agent_flow(alice: Agent, transferee_uri: str, target_uri: str) -> None:
    call = await alice.call(transferee_uri, timeout=STEP_TIMEOUT)
    xfer = await alice.refer(call, to=target_uri)
    accepted = await xfer.final(STEP_TIMEOUT)
    if accepted.status != 202:
        raise ExpectationFailed(f"REFER answered {accepted.status} {accepted.reason}, expected 202")
    await alice.expect("NOTIFY", call=call, sipfrag=100, timeout=STEP_TIMEOUT)
    await alice.expect("NOTIFY", call=call, sipfrag=200, state="terminated", timeout=STEP_TIMEOUT)
    bye = await alice.bye(call, timeout=STEP_TIMEOUT)
    if bye.status != 200:
        raise ExpectationFailed(f"BYE answered {bye.status} {bye.reason}")


async def agent_batch(flows: int, concurrency: int, proxy, transferee: tuple[str, int], target_uri: str,
                      budget: float) -> tuple[float, int, float, list[str]]:
    """`concurrency` transferor agents, each running flows one after the other until `flows` ran.
    Returns flows/s, successful flows, CPU milliseconds of this process per flow, errors."""
    agents = [await Agent.start(f"alice{i}", user="alice", outbound=proxy) for i in range(concurrency)]
    uri = f"sip:bob@{transferee[0]}:{transferee[1]}"
    left = [flows]
    ok = [0]
    errors: list[str] = []

    async def worker(alice: Agent) -> None:
        while left[0] > 0:
            left[0] -= 1
            try:
                await agent_flow(alice, uri, target_uri)
                ok[0] += 1
            except ExpectationFailed as exc:
                errors.append(str(exc).splitlines()[0])
            # a test agent keeps every message; a long batch drops those of finished flows
            alice.forget_messages()
            alice.calls.clear()

    try:
        t0, cpu0 = time.perf_counter(), time.process_time()
        async with asyncio.timeout(budget):
            await asyncio.gather(*(worker(a) for a in agents))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    finally:
        for alice in agents:
            await alice.close()
    return ok[0] / elapsed, ok[0], 1000 * cpu / max(ok[0], 1), errors


def agent_run(flows: int, concurrency: int, proxy, budget: float) -> tuple[float, int, float, list[str]]:
    """(flows/s, successful flows, CPU ms per flow, errors) with the Agent as the transferor."""
    with peer(flows, proxy, budget + 10) as (transferee, target_uri):
        return asyncio.run(agent_batch(flows, concurrency, proxy, transferee, target_uri, budget))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=2000, help="transfers per run (default 2000)")
    parser.add_argument("--concurrency", default="20,50",
                        help="transfers in flight at most; a comma-separated list runs each (default 20,50)")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each driver per level, alternating (default 2)")
    parser.add_argument("--budget", type=float, default=120.0, help="seconds one run may take (default 120)")
    parser.add_argument("--via-kamailio", action="store_true", help="send everything through a Kamailio proxy")
    args = parser.parse_args()
    try:
        levels = [int(c) for c in args.concurrency.split(",")]
    except ValueError:
        parser.error(f"--concurrency: expected numbers separated by commas, got {args.concurrency!r}")
    if not (0 < args.flows <= 100000 and all(0 < c <= 1000 for c in levels) and 0 < args.rounds <= 20
            and 0 < args.budget <= 3600):
        parser.error("bounds: 0 < flows <= 100000, 0 < concurrency <= 1000, 0 < rounds <= 20, 0 < budget <= 3600")

    proxy_cm = KamailioProxy(shm_mb=256, pkg_mb=8) if args.via_kamailio else contextlib.nullcontext()
    best: dict[str, float] = {"SIPp": 0.0, "Agent": 0.0}
    with proxy_cm as kamailio:
        proxy = kamailio.address if kamailio is not None else None
        where = f"through Kamailio {proxy[0]}:{proxy[1]}" if proxy else "directly"
        print(f"{args.flows} blind transfers per run; peer = SIPp transferee pair + SIPp target, {where}",
              flush=True)
        for level in levels:
            rates: dict[str, list[float]] = {"SIPp": [], "Agent": []}
            for round_no in range(1, args.rounds + 1):
                rate, ok = sipp_run(args.flows, level, proxy, args.budget)
                rates["SIPp"].append(rate)
                print(f"{level:4d} in flight, round {round_no}: SIPp  {rate:8.1f} flows/s ({ok}/{args.flows} ok)",
                      flush=True)
                rate, ok, cpu_ms, errors = agent_run(args.flows, level, proxy, args.budget)
                rates["Agent"].append(rate)
                print(f"{level:4d} in flight, round {round_no}: Agent {rate:8.1f} flows/s ({ok}/{args.flows} ok, "
                      f"{cpu_ms:.2f} ms of CPU per flow)" + (f"; first error: {errors[0]}" if errors else ""),
                      flush=True)
            medians = {k: statistics.median(v) for k, v in rates.items()}
            print(f"{level:4d} in flight: median SIPp {medians['SIPp']:.1f}, Agent {medians['Agent']:.1f} flows/s, "
                  f"Agent / SIPp = {medians['Agent'] / medians['SIPp'] if medians['SIPp'] else 0:.2f}", flush=True)
            for driver, values in rates.items():
                best[driver] = max(best[driver], max(values))
    ratio = best["Agent"] / best["SIPp"] if best["SIPp"] else 0.0
    print(f"best of each: SIPp {best['SIPp']:.1f} flows/s, Agent {best['Agent']:.1f} flows/s; "
          f"Agent / SIPp = {ratio:.2f} (goal >= {GOAL:g}): {'met' if ratio >= GOAL else 'NOT met'}")
    return 0 if ratio >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
