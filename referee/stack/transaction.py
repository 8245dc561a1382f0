"""Client and server transactions, RFC 3261 §17 (with the RFC 6026 Accepted states).

Sans-I/O: a transaction is fed events (`start`, `receive`, `respond`, `poll`) with the current
time and returns `Action`s for its owner to carry out (send bytes, pass a message up, report a
timeout). `deadline` is when `poll` must next be called. Nothing here sleeps or opens a socket.
"""

from __future__ import annotations

import dataclasses
import enum

from referee.sip import Request, Response

from .timers import TimerConfig

Address = tuple[str, int]


class State(enum.Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    ACCEPTED = "Accepted"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


@dataclasses.dataclass
class Send:
    """Put this message on the wire towards `dest`."""
    message: Request | Response
    dest: Address
    retransmission: bool = False


@dataclasses.dataclass
class PassUp:
    """Give this message to the transaction user (the UA core)."""
    message: Request | Response
    transaction: "Transaction"


@dataclasses.dataclass
class Absorbed:
    """The transaction took this message for itself, and it is not a retransmission: the ACK of a
    non-2xx final response (RFC 3261 §17.2.1), which belongs to the INVITE transaction."""
    message: Request | Response
    transaction: "Transaction"


@dataclasses.dataclass
class TimedOut:
    """The transaction gave up: no (final) response (B/F), or no ACK for a final response (H, L)."""
    transaction: "Transaction"
    timer: str


Action = Send | PassUp | Absorbed | TimedOut


def branch_of(msg: Request | Response) -> str:
    vias = msg.via
    return (vias[0].branch or "") if vias else ""


class Transaction:
    """Timers are kept as name -> (fire time, current interval)."""

    invite: bool

    def __init__(self, request: Request, dest: Address, reliable: bool, timers: TimerConfig,
                 branch: str | None = None) -> None:
        self.request = request
        self.dest = dest
        self.reliable = reliable
        self.cfg = timers
        self.state = State.TERMINATED
        # the top Via's branch; a caller that just wrote that Via may pass it (no need to parse it back)
        self.branch = branch_of(request) if branch is None else branch
        self.method = request.method
        self._timers: dict[str, tuple[float, float]] = {}
        self.last_response: Response | None = None
        self.table_key: tuple = ()     # set by the TransactionLayer that owns it
        self.queued: float | None = None   # the deadline its layer's timer heap holds for it

    @property
    def deadline(self) -> float | None:
        earliest = None
        for at, _ in self._timers.values():
            if earliest is None or at < earliest:
                earliest = at
        return earliest

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def _arm(self, name: str, now: float, interval: float) -> None:
        self._timers[name] = (now + interval, interval)

    def _terminate(self) -> None:
        self.state = State.TERMINATED
        self._timers.clear()

    def poll(self, now: float) -> list[Action]:
        """Fire every timer due at `now` (in time order)."""
        actions: list[Action] = []
        while True:
            due = [(at, name) for name, (at, _) in self._timers.items() if at <= now]
            if not due:
                return actions
            _, name = min(due)
            at, interval = self._timers.pop(name)
            # re-arm from the scheduled time, not from when we were polled, so intervals stay exact
            actions += self._fire(name, at, interval)

    def _fire(self, name: str, now: float, interval: float) -> list[Action]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.branch} {self.state.value}>"


class ClientTransaction(Transaction):
    """Sends a request and delivers its responses (17.1.1 INVITE, 17.1.2 non-INVITE)."""

    def __init__(self, request: Request, dest: Address, reliable: bool = False,
                 timers: TimerConfig = TimerConfig(), branch: str | None = None) -> None:
        super().__init__(request, dest, reliable, timers, branch)
        self.invite = request.method == "INVITE"
        self.ack: Request | None = None

    def start(self, now: float) -> list[Action]:
        t1 = self.cfg.t1
        if self.invite:
            self.state = State.CALLING
            if not self.reliable:
                self._arm("A", now, t1)
            self._arm("B", now, self.cfg.b)
        else:
            self.state = State.TRYING
            if not self.reliable:
                self._arm("E", now, t1)
            self._arm("F", now, self.cfg.b)
        return [Send(self.request, self.dest)]

    def receive(self, response: Response, now: float) -> list[Action]:
        if self.state is State.TERMINATED:
            return []
        status = response.status
        if self.invite:
            return self._receive_invite(response, status, now)
        if self.state in (State.TRYING, State.PROCEEDING):
            self.last_response = response
            if status < 200:
                self.state = State.PROCEEDING
                return [PassUp(response, self)]
            self._timers.clear()
            self.state = State.COMPLETED
            self._arm("K", now, 0 if self.reliable else self.cfg.t4)
            if self.reliable:
                self._terminate()
            return [PassUp(response, self)]
        return []   # Completed: retransmitted final responses are absorbed

    def _receive_invite(self, response: Response, status: int, now: float) -> list[Action]:
        if self.state in (State.CALLING, State.PROCEEDING):
            self.last_response = response
            if status < 200:
                self.state = State.PROCEEDING
                self._timers.pop("A", None)
                self._timers.pop("B", None)
                return [PassUp(response, self)]
            self._timers.clear()
            if status < 300:
                # RFC 6026: stay Accepted for 64*T1 so 2xx retransmissions reach the TU (to re-ACK).
                self.state = State.ACCEPTED
                self._arm("M", now, self.cfg.b)
                return [PassUp(response, self)]
            self.state = State.COMPLETED
            self.ack = build_non2xx_ack(self.request, response)
            if self.reliable:
                self._terminate()
            else:
                self._arm("D", now, self.cfg.d)
            return [Send(self.ack, self.dest), PassUp(response, self)]
        if self.state is State.ACCEPTED and 200 <= status < 300:
            return [PassUp(response, self)]
        if self.state is State.COMPLETED and status >= 300 and self.ack is not None:
            return [Send(self.ack, self.dest, retransmission=True)]
        return []

    def _fire(self, name: str, now: float, interval: float) -> list[Action]:
        if name == "A" and self.state is State.CALLING:
            self._arm("A", now, interval * 2)
            return [Send(self.request, self.dest, retransmission=True)]
        if name == "E" and self.state in (State.TRYING, State.PROCEEDING):
            nxt = self.cfg.t2 if self.state is State.PROCEEDING else min(interval * 2, self.cfg.t2)
            self._arm("E", now, nxt)
            return [Send(self.request, self.dest, retransmission=True)]
        if name in ("B", "F"):
            self._terminate()
            return [TimedOut(self, name)]
        if name in ("D", "K", "M"):
            self._terminate()
        return []


class ServerTransaction(Transaction):
    """Absorbs request retransmissions and retransmits responses (17.2.1 INVITE, 17.2.2 non-INVITE)."""

    def __init__(self, request: Request, source: Address, reliable: bool = False,
                 timers: TimerConfig = TimerConfig(), branch: str | None = None) -> None:
        super().__init__(request, source, reliable, timers, branch)
        self.invite = request.method == "INVITE"
        self.state = State.PROCEEDING if self.invite else State.TRYING
        self.ack_received: Request | None = None

    def receive(self, request: Request, now: float) -> list[Action]:
        """A retransmission of our request, or the ACK of an INVITE transaction."""
        if request.method == "ACK":
            if self.state is State.COMPLETED:
                self.state = State.CONFIRMED
                self._timers.clear()
                self._arm("I", now, 0 if self.reliable else self.cfg.t4)
                if self.reliable:
                    self._terminate()
                self.ack_received = request
                return [Absorbed(request, self)]
            if self.state is State.ACCEPTED:
                # ACK for a 2xx belongs to the dialog: stop retransmitting the 2xx, pass it up.
                self._timers.pop("G2xx", None)
                self.ack_received = request
                return [PassUp(request, self)]
            return []
        if self.state in (State.PROCEEDING, State.COMPLETED, State.ACCEPTED) and self.last_response:
            if self.state is State.ACCEPTED and not self.invite:
                return []
            return [Send(self.last_response, self.dest, retransmission=True)]
        return []

    def respond(self, response: Response, now: float) -> list[Action]:
        if self.state in (State.TERMINATED, State.CONFIRMED):
            raise RuntimeError(f"cannot respond {response.status} in state {self.state.value}")
        if self.state is State.COMPLETED or self.state is State.ACCEPTED:
            if not (self.state is State.ACCEPTED and 200 <= response.status < 300):
                raise RuntimeError(f"transaction already answered {self.last_response.status}")
        self.last_response = response
        status = response.status
        if status < 200:
            if not self.invite:
                self.state = State.PROCEEDING
            return [Send(response, self.dest)]
        if self.invite:
            if status < 300:
                # RFC 6026 Accepted; the 2xx is retransmitted (RFC 3261 §13.3.1.4) until the ACK.
                self.state = State.ACCEPTED
                self._arm("L", now, self.cfg.b)
                if not self.reliable:
                    self._arm("G2xx", now, self.cfg.t1)
                return [Send(response, self.dest)]
            self.state = State.COMPLETED
            if not self.reliable:
                self._arm("G", now, self.cfg.t1)
            self._arm("H", now, self.cfg.b)
            return [Send(response, self.dest)]
        self.state = State.COMPLETED
        if self.reliable:
            self._terminate()
        else:
            self._arm("J", now, self.cfg.b)
        return [Send(response, self.dest)]

    def _fire(self, name: str, now: float, interval: float) -> list[Action]:
        if name in ("G", "G2xx") and self.last_response is not None:
            self._arm(name, now, min(interval * 2, self.cfg.t2))
            return [Send(self.last_response, self.dest, retransmission=True)]
        if name == "H":
            self._terminate()
            return [TimedOut(self, "H")]
        if name == "L":
            no_ack = self.ack_received is None
            self._terminate()
            return [TimedOut(self, "L")] if no_ack else []
        if name in ("I", "J"):
            self._terminate()
        return []


def build_non2xx_ack(invite: Request, response: Response) -> Request:
    """ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same branch, To from the response."""
    headers = [("Via", invite.header_all("Via")[0])]
    for name in ("Route",):
        headers += [(name, v) for v in invite.header_all(name)]
    headers += [("Max-Forwards", "70"), ("From", invite.header("From") or ""),
                ("To", response.header("To") or ""), ("Call-ID", invite.call_id or ""),
                ("CSeq", f"{invite.cseq.seq} ACK")]
    return Request("ACK", invite.uri_text, headers)
