"""The objects a test holds while it drives an agent: calls, received requests, sent requests, the log."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import TYPE_CHECKING

from referee.sip import Request, Response, escape_header_value
from referee.stack import ClientTransaction, Dialog, ReferNotifier, ReferSubscriber, ServerTransaction

from .evidence import Evidence
from .matchers import ExpectationFailed

if TYPE_CHECKING:
    from .agent import Agent

Address = tuple[str, int]


@dataclasses.dataclass
class LogEntry:
    """One message as it crossed this agent's socket."""
    time: float                      # wall clock (time.time()), comparable with pcap timestamps
    direction: str                   # 'sent' | 'received'
    raw: bytes
    message: Request | Response | None
    local: Address
    remote: Address
    transport: str
    error: str | None = None         # why the bytes could not be parsed
    retransmission: bool = False
    agent: str = ""

    def summary(self) -> str:
        what = self.message.summary() if self.message is not None else f"<unparsable: {self.error}>"
        arrow = "->" if self.direction == "sent" else "<-"
        return f"{self.agent} {arrow} {self.remote[0]}:{self.remote[1]} {what}"


@dataclasses.dataclass(eq=False)
class Inbound:
    """A received message an expectation may consume (new requests and passed-up responses)."""
    message: Request | Response
    source: Address
    time: float
    consumed: bool = False
    incoming: "Incoming | None" = None      # for requests
    request: "ClientRequest | None" = None  # for responses
    call_id: str = ""                       # cached: expectations filter on it constantly

    def __post_init__(self) -> None:
        self.call_id = self.message.call_id or ""

    def summary(self) -> str:
        return self.message.summary()


class Call:
    """An INVITE dialog this agent is part of (as caller or callee)."""

    def __init__(self, agent: "Agent", dialog: Dialog, invite: Request, peer: Address) -> None:
        self.agent = agent
        self.dialog = dialog
        self.peer = peer                 # where in-dialog requests go (next hop), learned or set
        # The INVITE and its 2xx are kept as bytes and parsed on access: a parsed message with its
        # views is several KB, and an idle call should stay small.
        self._invite = bytes(invite)
        self._response: bytes | None = None
        self._ack: bytes | None = None
        self._ack_received: asyncio.Event | None = None
        self._ended: asyncio.Event | None = None
        self.subscriptions: list[ReferSubscriber] = []   # REFERs we sent in this dialog
        self.notifiers: list[ReferNotifier] = []         # REFERs we accepted
        self.refers_sent = 0
        self.refers_received = 0
        self.created = time.time()
        self._remote_sdp: bytes | None = None            # the peer's latest SDP (re-INVITEs move media)
        self.rtp_sent_to: Address | None = None

    @property
    def remote_sdp(self) -> bytes:
        """The peer's latest SDP body in this call: its re-INVITE or 2xx, else the initial offer/answer."""
        if self._remote_sdp is not None:
            return self._remote_sdp
        if self.dialog.is_uac:
            response = self.response
            return response.body if response is not None else b""
        return self.invite.body

    @remote_sdp.setter
    def remote_sdp(self, body: bytes) -> None:
        self._remote_sdp = bytes(body)

    @property
    def invite(self) -> Request:
        from referee.sip import parse
        return parse(self._invite)

    @property
    def response(self) -> Response | None:
        from referee.sip import parse
        return parse(self._response) if self._response is not None else None

    @response.setter
    def response(self, value: Response | None) -> None:
        self._response = bytes(value) if value is not None else None

    @property
    def ack(self) -> Request | None:
        """The ACK we sent for the 2xx (re-sent on 2xx retransmissions)."""
        from referee.sip import parse
        return parse(self._ack) if self._ack is not None else None

    @ack.setter
    def ack(self, value: Request | None) -> None:
        self._ack = bytes(value) if value is not None else None

    @property
    def ack_received(self) -> asyncio.Event:
        if self._ack_received is None:
            self._ack_received = asyncio.Event()
        return self._ack_received

    @property
    def ended(self) -> asyncio.Event:
        if self._ended is None:
            self._ended = asyncio.Event()
        return self._ended

    @property
    def call_id(self) -> str:
        return self.dialog.call_id

    @property
    def remote_target(self) -> str:
        return self.dialog.remote_target

    @property
    def replaces(self) -> str:
        """This dialog as a Replaces value, as the peer would match it (RFC 3891 §3)."""
        return self.dialog.replaces_value()

    @property
    def replaces_escaped(self) -> str:
        return escape_header_value(self.replaces)

    @property
    def is_up(self) -> bool:
        return self._ended is None or not self._ended.is_set()

    def __repr__(self) -> str:
        return f"<Call {self.agent.name} {self.call_id} {self.dialog.state.value}>"


class Incoming:
    """A request we received and have to answer (its server transaction)."""

    def __init__(self, agent: "Agent", request: Request, source: Address,
                 transaction: ServerTransaction | None, call: Call | None) -> None:
        self.agent = agent
        self.request = request
        self.source = source
        self.transaction = transaction
        self.call = call                 # the dialog it arrived in, if any
        self.to_tag: str | None = None   # our tag once we answered an INVITE (or a REFER)
        self.final: Response | None = None
        self.notifier: ReferNotifier | None = None   # a REFER's subscription, once we started it

    @property
    def method(self) -> str:
        return self.request.method

    async def respond(self, status: int, reason: str | None = None, headers=None, body: bytes = b"",
                      content_type: str | None = None) -> Response:
        return await self.agent.respond(self, status, reason, headers=headers, body=body,
                                        content_type=content_type)

    def __repr__(self) -> str:
        return f"<Incoming {self.request.summary()} from {self.source}>"


class ClientRequest:
    """A request we sent: its transaction, the responses so far, the final one."""

    def __init__(self, agent: "Agent", request: Request, dest: Address, call: Call | None) -> None:
        self.agent = agent
        self.request = request
        self.dest = dest
        self.call = call
        self.transaction: ClientTransaction | None = None
        self.responses: list[Response] = []
        self._loop = getattr(agent, "_loop", None) or asyncio.get_running_loop()
        self.final_future: asyncio.Future[Response] = self._loop.create_future()
        self.subscription: ReferSubscriber | None = None

    @property
    def method(self) -> str:
        return self.request.method

    def fail(self, exc: BaseException) -> None:
        """End the wait for a final response with `exc` (if it did not end yet)."""
        if not self.final_future.done():
            self.final_future.set_exception(exc)
            # nobody may be waiting any more when a transaction times out: that is not an error of
            # its own (marked as seen, so asyncio does not report it as never retrieved)
            self.final_future.exception()

    async def final(self, timeout: float = 10.0) -> Response:
        """The final response; raises ExpectationFailed on timeout (no answer) or transaction timeout."""
        future = self.final_future
        if not future.done():
            # wait for it without ever cancelling it: a second final() may still wait
            loop = self._loop
            waiter = loop.create_future()

            def wake(_=None) -> None:
                if not waiter.done():
                    waiter.set_result(None)

            future.add_done_callback(wake)
            timer = loop.call_later(timeout, wake) if timeout is not None else None
            try:
                await waiter
            finally:
                if timer is not None:
                    timer.cancel()
                future.remove_done_callback(wake)
        if not future.done():
            seen = ", ".join(str(r.status) for r in self.responses) or "nothing"
            raise ExpectationFailed(
                f"{self.agent.name}: no final response to {self.request.method} within {timeout:g} s "
                f"(sent to {self.dest[0]}:{self.dest[1]}; got {seen})",
                [Evidence(self.agent.name, "", expected=f"a final response to {self.request.summary()} within "
                          f"{timeout:g} s", seen=f"got {seen}")])
        return future.result()

    def __repr__(self) -> str:
        return f"<ClientRequest {self.request.summary()}>"
