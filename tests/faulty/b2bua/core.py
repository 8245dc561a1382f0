"""The B2BUA PBX as a sans-I/O state machine.

Feed it what arrives (`receive`: bytes, source, transport, now) and the passing of time (`tick`
at `next_deadline()`); it returns actions for the I/O shell: SendSip, RouteMedia, ReleaseMedia,
Log (tests/faulty/b2bua/actions.py). It never reads a clock, opens a socket or sleeps; relay
ports come from an injected allocator.

This module is the switchboard: it parses, runs the RFC 3261 transactions (referee.stack), answers
REGISTER, OPTIONS and out-of-dialog odds and ends itself, and hands calls to CallEngine (calls.py)
and REFERs to TransferEngine (transfer.py). Users are checked by the Registrar (registrar.py).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from referee.sip import Request, Response, SipParseError, default_reason, parse
from referee.stack import (ClientTransaction, CSeqError, Dialog, PassUp, Send, ServerTransaction, TimedOut,
                           TimerConfig, TransactionLayer, new_tag)

from .actions import Action, Log, SendSip
from .calls import CallEngine
from .faults import FAULTS
from .legs import Leg, LegTable
from .media import CountingPorts, Media, PortAllocator
from .messages import ALLOW, SDP, SUPPORTED, ack_for, add_via, response_to
from .registrar import Registrar
from .timers import Timers
from .transfer import TransferEngine


@dataclasses.dataclass
class Config:
    host: str
    port: int
    users: list                              # referee.dut.profile.User
    domain: str | None = None                # the profile's domain, else HOST:PORT
    default_transport: str = "udp"           # how static users are reached
    faults: frozenset[str] = frozenset()
    transfer: str = "act"                    # act | pass
    media: str = "relay"                     # relay | reinvite
    ring_timeout: float = 30.0
    challenge_refer: bool = False
    timers: TimerConfig = dataclasses.field(default_factory=TimerConfig)

    def __post_init__(self) -> None:
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults: {', '.join(sorted(unknown))}")
        if self.transfer not in ("act", "pass"):
            raise ValueError(f"transfer must be act or pass, not {self.transfer!r}")

    @property
    def hostport(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def realm(self) -> str:
        return self.domain or self.hostport


class B2bua:
    def __init__(self, config: Config, ports: PortAllocator | None = None, now: float = 0.0) -> None:
        self.cfg = config
        self.now = now
        self.registrar = Registrar(config.users, config.realm, config.default_transport)
        self.legs = LegTable()
        self.media = Media(config.media, config.host, ports or CountingPorts())
        self.layers = {"udp": TransactionLayer(False, config.timers), "tcp": TransactionLayer(True, config.timers)}
        self.timers = Timers()
        self.calls = CallEngine(self)
        self.transfers = TransferEngine(self)
        # our client transactions -> what to do with their responses
        self.waiting: dict[ClientTransaction, Callable[[Response], None]] = {}
        self.answered: set[ClientTransaction] = set()          # got their final response
        self.acks: dict[ClientTransaction, SendSip] = {}        # ACK of a 2xx, re-sent on retransmissions
        self.out: list[Action] = []

    def has(self, fault: str) -> bool:
        return fault in self.cfg.faults

    # == entry points ==============================================================================
    def receive(self, data: bytes, source: tuple[str, int], transport: str, now: float) -> list[Action]:
        """One datagram or one framed stream message from `source`."""
        self.now = now
        if not data.strip(b"\r\n"):
            return []                                   # keep-alive
        try:
            msg = parse(data, stream=transport != "udp")
            msg.via, msg.from_, msg.to, msg.cseq       # noqa: B018 - what every layer relies on
            if not msg.via:
                raise SipParseError("no Via")
            self._run(self.layers[transport].receive(msg, source, now), transport)
        except SipParseError as exc:
            self.log(f"dropped a message from {source[0]}:{source[1]}: {exc}")
        except Exception as exc:                        # one bad message must never stop the PBX
            self.log(f"error handling a message from {source[0]}:{source[1]}: {type(exc).__name__}: {exc}")
        return self._flush()

    def tick(self, now: float) -> list[Action]:
        """Time has passed: retransmissions, transaction timeouts, ring timeouts."""
        self.now = now
        try:
            for kind, layer in self.layers.items():
                self._run(layer.poll(now), kind)
            for callback in self.timers.due(now):
                callback()
        except Exception as exc:
            self.log(f"error in a timer: {type(exc).__name__}: {exc}")
        for tx in [tx for tx in self.waiting if tx.terminated]:
            del self.waiting[tx]
        self.answered = {tx for tx in self.answered if not tx.terminated}
        self.acks = {tx: ack for tx, ack in self.acks.items() if not tx.terminated}
        self.legs.forget_ended()
        return self._flush()

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (layer.next_deadline() for layer in self.layers.values()) if d is not None]
        if self.timers.next_deadline() is not None:
            deadlines.append(self.timers.next_deadline())
        return min(deadlines, default=None)

    def send_failed(self, message: Request | Response, now: float) -> list[Action]:
        """The shell could not send `message` (e.g. TCP connection refused): a request of ours
        is answered 503 (RFC 3261 §8.1.3.1)."""
        self.now = now
        tx = next((tx for tx in self.waiting if tx.request is message), None)
        if tx is not None and tx not in self.answered:
            self.answered.add(tx)
            self.waiting.pop(tx)(response_to(tx.request, 503, "Service Unavailable (transport error)"))
        return self._flush()

    def _flush(self) -> list[Action]:
        out, self.out = self.out, []
        return out

    def log(self, text: str) -> None:
        self.out.append(Log(text))

    def emit(self, actions: list[Action]) -> None:
        self.out += actions

    # == transaction layer glue ====================================================================
    def _run(self, actions, transport: str) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.out.append(SendSip(action.message, action.dest, transport))
            elif isinstance(action, PassUp):
                if isinstance(action.message, Request):
                    self._on_request(action.message, action.transaction, transport)
                else:
                    self._on_response(action.message, action.transaction)
            elif isinstance(action, TimedOut):
                self._on_timeout(action.transaction, action.timer)

    def respond(self, tx: ServerTransaction, status: int, reason: str = "", to_tag: str | None = None,
                headers=(), body: bytes = b"", content_type: str | None = None) -> None:
        request = tx.request
        answered = tx.last_response is not None and tx.last_response.status >= 200
        if tx.terminated or (answered and not (tx.invite and 200 <= status < 300)):
            return
        if to_tag is None and status > 100 and not request.to.tag:
            to_tag = new_tag()
        response = response_to(request, status, reason or default_reason(status), to_tag, headers, body,
                               content_type)
        transport = "tcp" if tx.reliable else "udp"
        self._run(self.layers[transport].respond(tx, response, self.now), transport)

    def contact(self, transport: str) -> str:
        suffix = ";transport=tcp" if transport == "tcp" else ""
        return f"<sip:b2bua@{self.cfg.hostport}{suffix}>"

    def send_request(self, request: Request, dest: tuple[str, int], transport: str,
                     on_response: Callable[[Response], None] | None = None,
                     keep_via: bool = False) -> ClientTransaction:
        if not keep_via:
            add_via(request, self.cfg.hostport, transport)
        tx, actions = self.layers[transport].send_request(request, dest, self.now)
        if on_response is not None:
            self.waiting[tx] = on_response
        self._run(actions, transport)
        return tx

    def request_in_dialog(self, dialog: Dialog, dest: tuple[str, int], transport: str, method: str,
                          headers=(), body: bytes = b"", content_type: str | None = None,
                          on_response: Callable[[Response], None] | None = None) -> ClientTransaction:
        request = dialog.build_request(method)
        if method in ("INVITE", "REFER", "NOTIFY", "SUBSCRIBE", "UPDATE"):
            request.add_header("Contact", self.contact(transport))
        for name, value in headers:
            request.add_header(name, value)
        if body:
            request.set_body(body, content_type)
        return self.send_request(request, dest, transport, on_response)

    def _on_response(self, response: Response, tx: ClientTransaction | None) -> None:
        if tx is None:
            self._stray_response(response)
            return
        if tx in self.answered:
            if tx in self.acks and 200 <= response.status < 300:
                self.out.append(self.acks[tx])          # a retransmitted 2xx: ACK it again
            return
        if response.status >= 200:
            self.answered.add(tx)
        handler = self.waiting.get(tx)
        if handler is not None:
            handler(response)

    def stop_waiting(self, tx: ClientTransaction) -> bool:
        """Deliver no more of `tx`'s responses; True when it had no final response yet."""
        if tx in self.answered:
            return False
        self.answered.add(tx)
        return True

    def _stray_response(self, response: Response) -> None:
        """A 2xx retransmission after the INVITE transaction ended: re-send its ACK."""
        if response.cseq.method == "INVITE" and 200 <= response.status < 300:
            for ack in self.acks.values():
                if ack.message.call_id == response.call_id and ack.message.cseq.seq == response.cseq.seq:
                    self.out.append(ack)
                    return

    def _on_timeout(self, tx, timer: str) -> None:
        if isinstance(tx, ClientTransaction):
            handler = self.waiting.pop(tx, None)
            if handler is not None and tx not in self.answered:
                self.answered.add(tx)
                self.log(f"no answer to {tx.request.method} {tx.request.uri_text} (timer {timer})")
                handler(response_to(tx.request, 408, "Request Timeout"))
        elif timer in ("H", "L"):
            self.log(f"no ACK for our {tx.last_response.status} to {tx.method} (timer {timer})")

    def send_ack(self, leg: Leg, invite: Request, tx: ClientTransaction, body: bytes = b"") -> None:
        ack = ack_for(leg.dialog, invite)
        add_via(ack, self.cfg.hostport, leg.transport)
        if body:
            ack.set_body(body, SDP)
        send = SendSip(ack, leg.address, leg.transport)
        self.acks[tx] = send
        self.out.append(send)

    # == requests ==================================================================================
    def _on_request(self, request: Request, tx: ServerTransaction | None, transport: str) -> None:
        if request.method == "ACK":
            self.calls.on_ack(request)
            return
        try:
            self._dispatch(request, tx, transport)
        except SipParseError as exc:
            self.log(f"bad {request.method}: {exc}")
            self.respond(tx, 400, f"Bad Request ({exc.reason})")

    def _dispatch(self, request: Request, tx: ServerTransaction, transport: str) -> None:
        method = request.method
        if method == "CANCEL":
            self.calls.on_cancel(request, tx, transport)
        elif request.to.tag:
            self._in_dialog(request, tx)
        elif request.max_forwards == 0:
            self.respond(tx, 483, "Too Many Hops")
        elif method == "REGISTER":
            self._register(request, tx, transport)
        elif method == "OPTIONS":
            self.respond(tx, 200, "OK", headers=[("Allow", ALLOW), ("Supported", SUPPORTED),
                                                 ("Accept", "application/sdp")])
        elif method == "INVITE":
            self.calls.on_invite(request, tx, transport)
        elif method == "REFER":
            self.transfers.on_ood_refer(request, tx, transport)
        elif method == "SUBSCRIBE":
            verdict = self.registrar.authorize(request)
            if verdict.status is not None:
                self.respond(tx, verdict.status, verdict.reason, headers=verdict.headers)
            else:
                self.respond(tx, 489, "Bad Event")
        elif method == "BYE":
            self.respond(tx, 481, "Call/Transaction Does Not Exist")
        else:
            self.respond(tx, 405, "Method Not Allowed", headers=[("Allow", ALLOW)])

    def _register(self, request: Request, tx: ServerTransaction, transport: str) -> None:
        verdict = self.registrar.register(request, transport)
        self.respond(tx, verdict.status, verdict.reason, headers=verdict.headers)
        if verdict.status == 200:
            binding = self.registrar.bindings.get(verdict.user.extension)
            self.log(f"REGISTER {verdict.user.extension}: {binding.contact if binding else 'unbound'}")

    def _in_dialog(self, request: Request, tx: ServerTransaction) -> None:
        leg = self.legs.by_dialog(request)
        if leg is None or leg.ended:
            if leg is not None and request.method == "BYE":
                self.respond(tx, 200, "OK")       # it crossed our own BYE
            else:
                self.respond(tx, 481, "Call/Transaction Does Not Exist")
            return
        try:
            leg.dialog.on_request(request)
        except CSeqError as exc:
            self.respond(tx, 500, f"Server Internal Error (CSeq out of order: {exc})")
            return
        method = request.method
        if method == "BYE":
            self.calls.on_bye(leg, tx)
        elif method == "INVITE":
            self.calls.on_reinvite(leg, request, tx)
        elif method == "REFER":
            self.transfers.on_refer(leg, request, tx)
        elif method == "NOTIFY":
            self.transfers.on_notify(leg, request, tx)
        elif method in ("OPTIONS", "INFO", "MESSAGE"):
            self.respond(tx, 200, "OK")
        else:
            self.respond(tx, 501, "Not Implemented")
