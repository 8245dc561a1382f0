"""Run a piece of Python inside a named network namespace (`ip netns` style).

`setns(CLONE_NEWNET)` changes the namespace of the calling *thread* only, so the call runs in
a short-lived helper thread that joins the namespace, runs the function and exits. Sockets the
function creates belong to that namespace for their whole life and can be used from any
thread afterwards; the caller's own thread never changes namespace.
"""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Callable, TypeVar

T = TypeVar("T")

NETNS_DIR = "/run/netns"
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(RuntimeError):
    """A network namespace could not be entered."""


def netns_path(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise NetnsError(f"invalid network namespace name {name!r}")
    return os.path.join(NETNS_DIR, name)


def call_in_netns(name: str | None, fn: Callable[[], T], timeout: float = 10.0) -> T:
    """Call fn() inside network namespace `name` (None: the current one) and return its result.

    Exceptions raised by fn are re-raised in the caller.
    """
    if name is None:
        return fn()
    path = netns_path(name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NetnsError(f"network namespace {name!r} does not exist ({path} missing)") from None
    outcome: dict[str, object] = {}

    def runner() -> None:
        try:
            if _libc.setns(fd, _CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise NetnsError(f"setns({path}) failed: {os.strerror(err)}")
            outcome["value"] = fn()
        except BaseException as exc:  # handed back to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=runner, name=f"netns:{name}", daemon=True)
    try:
        thread.start()
        thread.join(timeout)
    finally:
        os.close(fd)
    if thread.is_alive():
        raise NetnsError(f"call inside network namespace {name!r} did not finish within {timeout}s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
