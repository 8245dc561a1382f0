"""The transaction layer: matches messages to transactions (RFC 3261 §17.1.3, §17.2.3).

It owns every live transaction, routes incoming messages to them, creates server transactions
for new requests, and collects timer actions. Still sans-I/O: feed it messages and times.
"""

from __future__ import annotations

import heapq
import itertools
import os
import secrets

from referee.sip import Request, Response

from .timers import TimerConfig
from .transaction import (Action, Address, ClientTransaction, PassUp, ServerTransaction,
                          Transaction, branch_of)

MAGIC_COOKIE = "z9hG4bK"


def new_branch() -> str:
    """A branch unique across space and time (RFC 3261 §8.1.1.7): a random prefix drawn per
    process (again in a forked child) and a counter."""
    return f"{_branch_prefix}{next(_branch_numbers):x}"


def _new_branch_prefix() -> None:
    global _branch_prefix, _branch_numbers
    _branch_prefix = MAGIC_COOKIE + secrets.token_hex(6)   # (fixed length: no two numbers read alike)
    _branch_numbers = itertools.count(1)


_new_branch_prefix()
os.register_at_fork(after_in_child=_new_branch_prefix)


class TransactionLayer:
    def __init__(self, reliable: bool = False, timers: TimerConfig = TimerConfig()) -> None:
        self.reliable = reliable
        self.timers = timers
        self.clients: dict[tuple[str, str], ClientTransaction] = {}
        self.servers: dict[tuple[str, str, str], ServerTransaction] = {}
        # (deadline, n, transaction): a heap so the next timer is found without scanning every
        # transaction; entries whose deadline no longer matches their transaction are stale.
        self._heap: list[tuple[float, int, Transaction]] = []
        # INVITE server transactions that sent a 2xx, by (Call-ID, CSeq): where the ACK goes
        self._accepted: dict[tuple[str | None, int], ServerTransaction] = {}
        self._n = itertools.count()

    def _schedule(self, tx: Transaction) -> None:
        # every transaction with a deadline has an entry for it in the heap: tx.queued says which
        deadline = tx.deadline
        if deadline is not None and deadline != tx.queued:
            tx.queued = deadline
            heapq.heappush(self._heap, (deadline, next(self._n), tx))

    # -- client side ---------------------------------------------------------------------
    def send_request(self, request: Request, dest: Address, now: float,
                     branch: str | None = None) -> tuple[ClientTransaction, list[Action]]:
        """Start a client transaction for `request` (which must carry its Via with a branch;
        `branch`, when given, is that branch, as the caller that wrote the Via knows it)."""
        tx = ClientTransaction(request, dest, self.reliable, self.timers, branch)
        method = "INVITE" if request.method == "ACK" else request.method
        tx.table_key = (tx.branch, method)
        self.clients[tx.table_key] = tx
        actions = tx.start(now)
        self._schedule(tx)
        return tx, actions

    # -- incoming ------------------------------------------------------------------------
    def receive(self, msg: Request | Response, source: Address, now: float) -> list[Action]:
        """Feed one incoming message. New requests and unmatched responses come back as
        PassUp with transaction None-like semantics: PassUp.transaction is the new server
        transaction (requests) or None (a stray response, e.g. a 2xx retransmission after
        the INVITE client transaction ended)."""
        if isinstance(msg, Response):
            key = (branch_of(msg), msg.cseq.method)
            tx = self.clients.get(key)
            if tx is None:
                return [PassUp(msg, None)]  # type: ignore[arg-type]
            actions = tx.receive(msg, now)
            self._schedule(tx)
            self._forget_if_done(tx)
            return actions
        return self._receive_request(msg, source, now)

    def _receive_request(self, request: Request, source: Address, now: float) -> list[Action]:
        key = self._server_key(request)
        tx = self.servers.get(key)
        if tx is not None and not tx.terminated:
            actions = tx.receive(request, now)
            self._schedule(tx)
            self._forget_if_done(tx)
            return actions
        if request.method == "ACK":
            # ACK for a 2xx has its own branch: match it to the INVITE server transaction that
            # is retransmitting that 2xx (same Call-ID and CSeq number), else hand it up alone.
            server = self._accepted.get((request.call_id, request.cseq.seq))
            if server is not None and server.state.value == "Accepted":
                actions = server.receive(request, now)
                self._schedule(server)
                return actions
            return [PassUp(request, None)]  # type: ignore[arg-type]
        tx = ServerTransaction(request, source, self.reliable, self.timers, key[0])
        tx.table_key = key
        self.servers[key] = tx
        return [PassUp(request, tx)]

    @staticmethod
    def _server_key(request: Request) -> tuple[str, str, str]:
        """(top Via branch, its sent-by, method): the first is the transaction's branch."""
        vias = request.via
        method = "INVITE" if request.method == "ACK" else request.method
        if not vias:
            return ("", "", method)
        via = vias[0]
        return (via.branch or "", via.sent_by, method)

    def find_server(self, branch: str, method: str) -> ServerTransaction | None:
        for (b, _, m), tx in self.servers.items():
            if b == branch and m == method and not tx.terminated:
                return tx
        return None

    def respond(self, tx: ServerTransaction, response: Response, now: float) -> list[Action]:
        actions = tx.respond(response, now)
        if tx.invite and 200 <= response.status < 300:
            self._accepted[(tx.request.call_id, tx.request.cseq.seq)] = tx
        self._schedule(tx)
        self._forget_if_done(tx)
        return actions

    # -- time ----------------------------------------------------------------------------
    def poll(self, now: float) -> list[Action]:
        actions: list[Action] = []
        while self._heap and self._heap[0][0] <= now:
            deadline, _, tx = heapq.heappop(self._heap)
            if tx.queued == deadline:
                tx.queued = None
            if tx.deadline != deadline:
                continue            # stale entry: the transaction was re-scheduled or ended
            actions += tx.poll(now)
            self._schedule(tx)
            self._forget_if_done(tx)
        return actions

    def _forget_if_done(self, tx: Transaction) -> None:
        if not tx.terminated:
            return
        table = self.clients if isinstance(tx, ClientTransaction) else self.servers
        if table.get(tx.table_key) is tx:
            del table[tx.table_key]
        if isinstance(tx, ServerTransaction) and tx.invite:
            key = (tx.request.call_id, tx.request.cseq.seq)
            if self._accepted.get(key) is tx:
                del self._accepted[key]

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and heap[0][2].deadline != heap[0][0]:
            deadline, _, tx = heapq.heappop(heap)     # stale entry: the transaction moved on
            if tx.queued == deadline:
                tx.queued = None
        return heap[0][0] if heap else None

    def earliest(self) -> float | None:
        """A time no later than the next deadline (the heap's first entry, which may be one a
        transaction has moved past): cheaper than next_deadline() when only a bound is needed."""
        return self._heap[0][0] if self._heap else None

    def all(self) -> list[Transaction]:
        return [*self.clients.values(), *self.servers.values()]
