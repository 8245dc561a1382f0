"""RFC 3261 timer values and an injectable clock.

The stack never reads the time itself: every call takes `now` (seconds, float). The agent
passes its event loop's time; unit tests pass a FakeClock they advance by hand.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class TimerConfig:
    t1: float = 0.5     # RTT estimate
    t2: float = 4.0     # max retransmit interval for non-INVITE requests and INVITE responses
    t4: float = 5.0     # max time a message stays in the network

    @property
    def b(self) -> float:       # INVITE client transaction timeout (also F, H, J, L, M)
        return 64 * self.t1

    @property
    def d(self) -> float:       # wait for response retransmissions (unreliable)
        return max(32.0, 64 * self.t1) if self.t1 >= 0.5 else 64 * self.t1


class FakeClock:
    """A clock for tests: time moves only when advanced (milliseconds of test time)."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now
