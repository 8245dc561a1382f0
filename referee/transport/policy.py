"""Where the suite may send: the DUT, loopback and the test-host ranges of its own namespaces.

A mistyped profile must never spray a production network: every send is checked, and anything
else is refused unless explicitly allowed (`--allow-target`).
"""

from __future__ import annotations

import ipaddress

from .base import Address, TransportError

# loopback, and the benchmarking ranges the suite's own network namespaces use
DEFAULT_ALLOWED = ("127.0.0.0/8", "::1/128", "198.18.0.0/15", "2001:2::/48")


class DestinationRefused(TransportError):
    pass


class DestinationPolicy:
    def __init__(self, extra: list[str] | tuple[str, ...] = ()) -> None:
        self.networks = [ipaddress.ip_network(n, strict=False) for n in (*DEFAULT_ALLOWED, *extra)]

    def allow(self, target: str) -> None:
        """Allow one more address or network (e.g. the DUT's address from its profile)."""
        self.networks.append(ipaddress.ip_network(target, strict=False))

    def allows(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False          # names are never resolved by the suite: only literal addresses
        return any(address in net for net in self.networks if net.version == address.version)

    def check(self, dest: Address) -> None:
        if not self.allows(dest[0]):
            raise DestinationRefused(
                f"refusing to send to {dest[0]}:{dest[1]}: not the DUT, loopback or a test namespace "
                f"(allow it explicitly with --allow-target {dest[0]})")
