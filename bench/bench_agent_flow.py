"""Two agents on loopback run complete blind transfers; print flows/s and the latency of one flow.

One flow: alice calls bob (INVITE/100/200/ACK), alice REFERs bob to carol (REFER/202), bob
NOTIFYs 100 and 200, bob calls carol (INVITE/200/ACK), then both calls are hung up (BYEs).
Also prints the memory of an idle confirmed dialog (agent-side Call + Dialog + messages).

    python bench/bench_agent_flow.py [--flows 300]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
import tracemalloc
import pathlib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from referee.agent import Agent  # noqa: E402


async def one_flow(alice: Agent, bob: Agent, carol: Agent) -> None:
    call = await alice.call(bob.uri)
    xfer = await alice.refer(call, to=carol.uri)
    refer = await bob.expect("REFER", timeout=5)
    await bob.accept_refer(refer)
    await xfer.final(5)
    bob_call = refer.incoming.call
    await bob.notify_transfer(bob_call, 100)
    new = await bob.call(carol.uri, headers={"Referred-By": refer.message.header("Referred-By")})
    await bob.notify_transfer(bob_call, 200)
    await alice.expect("NOTIFY", call=call, sipfrag=100, timeout=5)
    await alice.expect("NOTIFY", call=call, sipfrag=200, timeout=5)
    await alice.bye(call)
    await bob.bye(new)
    for agent in (alice, bob, carol):      # keep the agents' inboxes small between flows
        agent.forget_messages()
        agent.calls.clear()


async def flows(count: int) -> list[float]:
    alice, bob, carol = [await Agent.start(n) for n in ("alice", "bob", "carol")]
    bob.auto_answer = carol.auto_answer = 200
    try:
        for _ in range(10):
            await one_flow(alice, bob, carol)     # warm-up
        latencies = []
        for _ in range(count):
            t0 = time.perf_counter()
            await one_flow(alice, bob, carol)
            latencies.append(time.perf_counter() - t0)
        return latencies
    finally:
        for a in (alice, bob, carol):
            await a.close()


async def dialog_memory(count: int) -> float:
    alice, bob = await Agent.start("alice"), await Agent.start("bob")
    bob.auto_answer = 200
    try:
        await alice.call(bob.uri)          # warm-up: imports, caches
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        for _ in range(count):
            await alice.call(bob.uri)
        await asyncio.sleep(0.2)
        for agent in (alice, bob):
            agent.forget_messages()
            # let the transactions of the call set-ups end (their timers run 32 s): what stays
            # is the idle dialog itself
            agent.layer.poll(asyncio.get_running_loop().time() + 100)
            agent._last_sweep = 0.0
            agent._forget_finished_requests()
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
        # both sides hold the dialog: report per side
        return grown / count / 2
    finally:
        await alice.close()
        await bob.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flows", type=int, default=300)
    parser.add_argument("--dialogs", type=int, default=300)
    args = parser.parse_args()
    latencies = asyncio.run(flows(args.flows))
    total = sum(latencies)
    print(f"blind transfer flows: {args.flows} in {total:.2f} s = {args.flows / total:.0f} flows/s")
    print(f"latency of one flow: median {statistics.median(latencies) * 1000:.2f} ms, "
          f"p95 {sorted(latencies)[int(len(latencies) * 0.95)] * 1000:.2f} ms (goal: well under 10 ms)")
    per_dialog = asyncio.run(dialog_memory(args.dialogs))
    print(f"memory per idle confirmed dialog (one side, messages not logged): {per_dialog / 1024:.1f} KB "
          f"(goal < 10 KB)")


if __name__ == "__main__":
    main()
