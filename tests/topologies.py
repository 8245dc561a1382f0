"""A NAT topology (referee.wire.Topology) for one test or module, torn down afterwards; the test
is skipped with the reason where this machine cannot build one (no CAP_NET_ADMIN, no nft...)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from referee.wire import Topology, available


@contextlib.contextmanager
def topology_or_skip(prefix: str, alg: bool = True, hosts: tuple[tuple[str, str], ...] = ()) -> Iterator[Topology]:
    ok, why = available(alg=alg)
    if not ok:
        pytest.skip(f"NAT topology unavailable here: {why}")
    topo = Topology(alg=alg, prefix=prefix, ipv6=False)
    try:
        for side, addr in hosts:
            topo.add_host(side, addr)
        yield topo
    finally:
        topo.teardown()
