"""A long mutation-fuzz campaign against referee.sip and the agent's receive path.

    python bench/fuzz_campaign.py --inputs 1000000 [--seed 1] [--agent 20000]

Real messages are mutated (the mutators of tests/sip/test_fuzz.py) and thrown at parse(),
every typed view, the sipfrag/SDP/digest parsers and stream framing: only SipParseError may
escape. Then a share of mutants is fed through a live Agent's receive path, which must record
them and keep answering. Prints the counts; exits 1 on the first escaping exception (with the
input in hex to reproduce it).
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import random
import sys
import time

HERE = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(HERE), str(HERE / "tests" / "sip")]

from test_fuzz import BODIES, CORPUS, exercise_message, exercise_text, random_mutant  # noqa: E402


def parse_campaign(inputs: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    counts = {"parsed": 0, "rejected": 0}
    started = time.monotonic()
    for i in range(inputs):
        data = random_mutant(rng, rng.choice(CORPUS))
        try:
            counts[exercise_message(data)] += 1
            if i % 8 == 0:
                exercise_text(random_mutant(rng, rng.choice(BODIES)))
        except Exception:
            print(f"escaping exception on input {i} (seed {seed}): {data.hex()}", file=sys.stderr)
            raise
        if (i + 1) % 100_000 == 0:
            rate = (i + 1) / (time.monotonic() - started)
            print(f"  {i + 1:>9,} inputs  {rate:,.0f}/s", flush=True)
    return counts


async def agent_campaign(inputs: int, seed: int) -> tuple[int, int]:
    from referee.agent import Agent
    from referee.transport import Received
    rng = random.Random(seed + 1)
    alice, bob = await Agent.start("alice"), await Agent.start("bob")
    try:
        for i in range(inputs):
            data = random_mutant(rng, rng.choice(CORPUS))
            await alice._handle(Received(data, ("127.0.0.1", 5999), alice.address, "udp"))
            if i % 1000 == 0:
                alice.forget_messages()
        internal = [f for f in alice.findings if "internal error" in f]
        if internal:
            raise AssertionError(f"{len(internal)} internal errors, first: {internal[0]}")
        assert (await bob.options(alice.uri)).status == 200, "the agent stopped answering"
        return inputs, len(alice.defects)
    finally:
        await alice.close()
        await bob.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--agent", type=int, default=20_000, help="mutants through a live agent")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    t0 = time.monotonic()
    counts = parse_campaign(args.inputs, args.seed)
    t1 = time.monotonic()
    print(f"parse campaign: {args.inputs:,} inputs in {t1 - t0:.0f} s ({args.inputs / (t1 - t0):,.0f}/s): "
          f"{counts['parsed']:,} parsed, {counts['rejected']:,} rejected with SipParseError, 0 other exceptions")
    fed, defects = asyncio.run(agent_campaign(args.agent, args.seed))
    print(f"agent receive path: {fed:,} mutants, {defects:,} recorded as unparsable, agent still answering")


if __name__ == "__main__":
    main()
