"""Helpers for the scenario library: twin (3PCC) pairs and Refer-To values with Replaces.

SIPp runs one dialog per call. Roles that own two dialogs - the transferee (the call with the
transferor plus the new call to the target) and the attended transferor (the call with the
transferee plus the consultation call) - are two SIPp instances linked by SIPp's 3PCC twin
socket. The instance whose scenario starts with <recvCmd> listens on the twin port and must
be started first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from urllib.parse import quote

from referee.sipp.ports import free_port
from referee.sipp.process import Sipp, SippResult


def escape_replaces(call_id: str, to_tag: str, from_tag: str) -> str:
    """The Replaces value escaped for use inside a Refer-To URI (RFC 3891 section 6)."""
    value = f"{call_id};to-tag={to_tag};from-tag={from_tag}"
    return quote(value, safe="-_.!~*'()")


def refer_to_replaces(target_uri: str, call_id: str, to_tag: str, from_tag: str) -> str:
    """A Refer-To name-addr that asks the transferee to replace dialog (call_id, to_tag, from_tag)."""
    return f"<{target_uri}?Replaces={escape_replaces(call_id, to_tag, from_tag)}>"


@dataclasses.dataclass
class TransferPair:
    """Two SIPp instances acting as one party: `front` faces the peer, `twin` runs the second dialog."""

    front: Sipp
    twin: Sipp

    @property
    def address(self) -> tuple[str, int]:
        """Where the peer sends its INVITE (the front instance)."""
        return self.front.address

    def alive(self) -> bool:
        return self.front.alive() or self.twin.alive()

    def wait(self, timeout: float | None = None) -> tuple[SippResult, SippResult]:
        return self.front.wait(timeout), self.twin.wait(timeout)

    def stop(self) -> tuple[SippResult, SippResult]:
        """Stop both (the front first: it connects to the twin)."""
        front = self.front.stop() if self.front.pid is not None else None
        twin = self.twin.stop() if self.twin.pid is not None else None
        return front, twin  # type: ignore[return-value]

    def __enter__(self) -> "TransferPair":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_pair(front_scenario: str, twin_scenario: str, *,
               front_remote: str | tuple[str, int] | None,
               twin_remote: str | tuple[str, int] | None,
               calls: int | None = 1,
               front_params: Mapping[str, object] | None = None,
               twin_params: Mapping[str, object] | None = None,
               front_proxy: str | tuple[str, int] | None = None,
               twin_proxy: str | tuple[str, int] | None = None,
               local_ip: str = "127.0.0.1",
               timeout: float = 30.0,
               **options: object) -> TransferPair:
    """Start the twin (listening on a free TCP port), then the front instance connected to it.
    `options` go to both Sipp instances."""
    twin_addr = (local_ip, free_port(local_ip, udp=False, tcp=True))
    twin = Sipp(twin_scenario, twin_remote, params=twin_params, calls=calls, twin=twin_addr,
                proxy=twin_proxy, local_ip=local_ip, timeout=timeout, **options)  # type: ignore[arg-type]
    twin.start()
    try:
        front = Sipp(front_scenario, front_remote, params=front_params, calls=calls, twin=twin_addr,
                     proxy=front_proxy, local_ip=local_ip, timeout=timeout,
                     **options)  # type: ignore[arg-type]
        front.start()
    except BaseException:
        twin.stop()
        raise
    return TransferPair(front=front, twin=twin)


def start_transferee(target: str | tuple[str, int], *, calls: int | None = 1,
                     proxy: str | tuple[str, int] | None = None,
                     params: Mapping[str, object] | None = None,
                     newcall_params: Mapping[str, object] | None = None,
                     timeout: float = 30.0, **options: object) -> TransferPair:
    """A SIPp transferee: uas_transferee (answers the transferor) + uac_transferee_newcall
    (sends the new INVITE to `target`, through `proxy` when given). The answering side needs
    no proxy setting: it replies and sends in-dialog requests to where the INVITE came from."""
    return start_pair("uas_transferee", "uac_transferee_newcall", front_remote=None,
                      twin_remote=target, calls=calls, front_params=params,
                      twin_params=newcall_params, twin_proxy=proxy, timeout=timeout, **options)


def start_attended_transferor(transferee: str | tuple[str, int], target: str | tuple[str, int],
                              target_uri: str, *, calls: int | None = 1,
                              proxy: str | tuple[str, int] | None = None,
                              params: Mapping[str, object] | None = None,
                              consult_params: Mapping[str, object] | None = None,
                              timeout: float = 30.0, **options: object) -> TransferPair:
    """A SIPp attended transferor: uac_transferor_consult (the consultation call to `target`)
    + uac_transferor_attended (calls `transferee`, then REFERs it to `target_uri` with
    Replaces), both through `proxy` when given. Calls start as soon as the front is up."""
    front_params = {"target_uri": target_uri, **dict(params or {})}
    return start_pair("uac_transferor_attended", "uac_transferor_consult", front_remote=transferee,
                      twin_remote=target, calls=calls, front_params=front_params,
                      twin_params=consult_params, front_proxy=proxy, twin_proxy=proxy,
                      timeout=timeout, **options)
