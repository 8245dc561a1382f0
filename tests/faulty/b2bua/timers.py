"""The core's own timers (ring timeout, giving up after a CANCEL): key -> (time, callback).

Transactions keep their own RFC 3261 timers in referee.stack; these are the PBX's.
"""

from __future__ import annotations

from typing import Callable, Hashable


class Timers:
    def __init__(self) -> None:
        self._armed: dict[Hashable, tuple[float, Callable[[], None]]] = {}

    def arm(self, key: Hashable, at: float, callback: Callable[[], None]) -> None:
        self._armed[key] = (at, callback)

    def cancel(self, key: Hashable) -> None:
        self._armed.pop(key, None)

    def next_deadline(self) -> float | None:
        return min((at for at, _ in self._armed.values()), default=None)

    def due(self, now: float) -> list[Callable[[], None]]:
        """The callbacks due at `now`, in time order (and disarmed)."""
        due = sorted((at, key) for key, (at, _) in self._armed.items() if at <= now)
        return [self._armed.pop(key)[1] for _, key in due]
