"""Agent: the scriptable SIP user agent that tests and scenarios drive.

    alice = await Agent.start("alice")
    call = await alice.call(dut_uri)                       # INVITE / 200 / ACK
    xfer = await alice.refer(call, to=carol.uri)           # REFER, returns the client request
    assert (await xfer.final()).status == 202
    notify = await alice.expect("NOTIFY", call=call, sipfrag="1xx")

It answers what a UA answers by itself (100 Trying, ACK, 200 to NOTIFY/BYE/OPTIONS, digest
challenges); every such automatic behaviour is an attribute a negative test can switch off.
Every wait is bounded and fails with ExpectationFailed naming what was expected and what came.
"""

from __future__ import annotations

import asyncio
import collections
import re
import itertools
import secrets
import socket
import time
from typing import Iterable

from referee.sip import (NameAddr, Request, Response, SipParseError, escape_header_value, parse,
                         parse_uri, SipUri, Via)
from referee.sip.sdp import Sdp
from referee.stack import (Absorbed, CSeqError, Dialog, PassUp, ReferNotifier, ReferSubscriber, Send,
                           TimedOut, TimerConfig, TransactionLayer, new_branch, new_tag)
from referee.transport import DestinationPolicy, Received, Transport, TransportError, open_transport

from .evidence import Evidence, evidence_of
from .media import MediaRecorder, media_address, tagged_packets
from .middlebox import echo_rewritten
from .matchers import Expectation, ExpectationFailed, header_matchers, kind_matches, status_matches
from .objects import Address, Call, ClientRequest, Inbound, Incoming, LogEntry

Headers = dict[str, "str | None"] | Iterable[tuple[str, str]] | None

USER_AGENT = "referee-agent/0.1"
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY, UPDATE, INFO"
SUPPORTED = "replaces, norefersub, tdialog"


class Agent:
    """One SIP UA on one local transport address."""

    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0, transport: str = "udp",
                 user: str | None = None, timers: TimerConfig | None = None,
                 credentials: tuple[str, str] | None = None, outbound: Address | None = None,
                 domain: str | None = None, policy: DestinationPolicy | None = None) -> None:
        self.name = name
        self.policy = policy or DestinationPolicy()   # where this agent may send
        self.user = user or name
        self.host = host
        self.port = port
        self.transport_kind = transport.lower()
        self.timers = timers or TimerConfig()
        self.credentials = credentials
        self.outbound = outbound         # send every out-of-dialog request here (proxy / PBX)
        self.domain = domain             # host part of our AOR if not our own address
        self.transport: Transport | None = None
        self.layer = TransactionLayer(reliable=self.transport_kind != "udp", timers=self.timers)
        self.log: list[LogEntry] = []
        self.inbox: list[Inbound] = []          # everything expectations may consume, in order
        self._unconsumed: list[Inbound] = []    # the part of inbox not consumed yet
        self.calls: list[Call] = []
        self.findings: list[str] = []    # protocol problems noticed in what peers sent
        self.rewrites: list[str] = []    # echoes that came back changed: a middlebox on the path
        self.defects: list[LogEntry] = []  # unparsable input
        # automatic behaviours (switch off for negative tests)
        self.auto_trying = True          # 100 Trying to every INVITE
        self.auto_answer: int | None = None   # answer new INVITEs with this status (200: with SDP)
        self.auto_ack = True             # ACK 2xx responses to our INVITEs
        self.auto_auth = True            # answer 401/407 when credentials are set
        self.auto_notify: int | None = 200    # answer NOTIFY in a dialog with this status
        self.auto_bye: int | None = 200       # answer BYE in a dialog with this status
        self.auto_options: int | None = 200
        self.auto_cancel = True          # 200 to CANCEL and 487 to the INVITE
        self.auto_reinvite: int | None = 200  # answer re-INVITE / UPDATE
        self.auto_unknown_dialog = True  # 481 to in-dialog requests for dialogs we don't know
        self.auto_transferee = False     # carry out REFERs received in a call (transferee.py)
        # client transactions whose responses still have somewhere to go: until the final one
        # arrived (a 2xx to an INVITE: until its transaction ends, retransmissions are ACKed again)
        self._requests: dict[object, ClientRequest] = {}
        self._refer_dialogs: set[tuple[str | None, str | None]] = set()   # out-of-dialog REFERs sent
        # expect() calls waiting for a message: their future -> (expectation, call), oldest first
        self._waiters: dict[asyncio.Future, tuple[Expectation, Call | None]] = {}
        self._rx: collections.deque[Received] = collections.deque()   # received, not handled yet
        self._rx_ready: asyncio.Future | None = None       # the receive loop waits for more on it
        self._tasks: list[asyncio.Task] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None   # polls the transaction layer at its next deadline
        self._timer_runs: set[asyncio.Task] = set()       # carrying out what timers fired
        self._call_ids = itertools.count(1)
        self._sendable: tuple = (None, 0, set())     # see _check_dest
        self._rtp: socket.socket | None = None
        self._rtp_port: int | None = None
        self._offer: tuple = (None, b"")              # see sdp_offer
        self.media: MediaRecorder | None = None       # the RTP that reached us (media.py)
        self._last_sweep = 0.0
        self.closed = False

    # -- life cycle --------------------------------------------------------------------------
    @classmethod
    async def start(cls, name: str, host: str = "127.0.0.1", port: int = 0, transport: str = "udp",
                    **kwargs) -> "Agent":
        tls = {k: kwargs.pop(k) for k in ("server_ssl", "client_ssl") if k in kwargs}
        # socket_factory(family, type): e.g. sockets made inside a network namespace
        factory = kwargs.pop("socket_factory", None)
        agent = cls(name, host, port, transport, **kwargs)
        agent.transport = await open_transport(transport, host, port, agent._received,
                                               socket_factory=factory, **tls)
        agent.port = agent.transport.local[1]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        agent._rtp = (factory or socket.socket)(family, socket.SOCK_DGRAM)
        agent._rtp.bind((host, 0))
        agent._rtp.setblocking(False)
        loop = agent._loop = asyncio.get_running_loop()
        agent.media = MediaRecorder(agent._rtp)
        loop.add_reader(agent._rtp.fileno(), agent.media.on_readable)
        agent._tasks = [loop.create_task(agent._rx_loop())]
        return agent

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = [*self._tasks, *self._timer_runs]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.transport is not None:
            self.transport.close()
            await asyncio.sleep(0)   # a datagram transport closes its socket on the loop's next turn: the port is free on return
        if self._rtp is not None:
            try:
                asyncio.get_running_loop().remove_reader(self._rtp.fileno())
            except (RuntimeError, ValueError, OSError):
                pass
            self._rtp.close()
        for cr in self._requests.values():
            if not cr.final_future.done():
                cr.final_future.cancel()

    async def __aenter__(self) -> "Agent":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # -- addressing ----------------------------------------------------------------------------
    @property
    def address(self) -> Address:
        return (self.host, self.port)

    @property
    def hostport(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def uri(self) -> str:
        """Our contact URI, e.g. sip:alice@127.0.0.1:40123 (with ;transport= for TCP/TLS)."""
        suffix = "" if self.transport_kind == "udp" else f";transport={self.transport_kind}"
        return f"sip:{self.user}@{self.hostport}{suffix}"

    @property
    def aor(self) -> str:
        return f"sip:{self.user}@{self.domain}" if self.domain else self.uri

    @property
    def rtp_port(self) -> int:
        if self._rtp is None:
            return 0
        if self._rtp_port is None:
            self._rtp_port = self._rtp.getsockname()[1]
        return self._rtp_port

    def sdp_offer(self, direction: str = "sendrecv") -> bytes:
        # the offer only changes with its session id, the current second (Sdp.offer): made once a second
        key = (int(time.time()), direction, self.host, self.rtp_port)
        if self._offer[0] != key:
            self._offer = (key, Sdp.offer(self.host, self.rtp_port, direction=direction))
        return self._offer[1]

    def sdp_answer(self, offer: bytes) -> bytes:
        """The answer to an SDP offer (its direction mirrored: sendonly -> recvonly, RFC 3264 §6.1);
        an offer of ours when the INVITE carried none (we offer in the 2xx, RFC 3261 §13.2.1)."""
        if not offer:
            return self.sdp_offer()
        try:
            return Sdp.answer(offer, self.host, self.rtp_port)
        except (SipParseError, ValueError):
            self.findings.append("unparsable SDP offer; answered with an offer of ours")
            return self.sdp_offer()

    # -- receiving -----------------------------------------------------------------------------
    def _received(self, received: Received) -> None:
        self._rx.append(received)
        ready = self._rx_ready
        if ready is not None and not ready.done():
            ready.set_result(None)

    async def _rx_loop(self) -> None:
        rx = self._rx
        while not self.closed:
            if not rx:
                self._rx_ready = (self._loop or asyncio.get_running_loop()).create_future()
                await self._rx_ready
                continue
            received = rx.popleft()
            try:
                await self._handle(received)
            except SipParseError as exc:   # a header that only turned out bad when it was needed
                self.findings.append(f"malformed message from {received.source[0]}:{received.source[1]}: {exc}")
            except Exception as exc:   # never let one bad message stop the agent
                self.findings.append(f"internal error handling a message from "
                                     f"{received.source}: {type(exc).__name__}: {exc}")

    async def _handle(self, received: Received) -> None:
        data = received.data
        entry = LogEntry(received.time, "received", data, None, received.local,
                         received.source, received.transport, received.error, agent=self.name)
        self.log.append(entry)
        if received.error is not None or (data[:1] in (b"\r", b"\n", b"") and not data.strip(b"\r\n")):
            if received.error is not None:
                self.defects.append(entry)
            return          # keep-alive CRLFs or unframable stream bytes
        try:
            msg = parse(data, stream=received.transport != "udp")
            # the headers every layer relies on must be well formed, not just present
            msg.via, msg.from_, msg.to, msg.cseq  # noqa: B018
        except SipParseError as exc:
            entry.error = str(exc)
            self.defects.append(entry)
            self.findings.append(f"unparsable message from {received.source[0]}:{received.source[1]}: {exc}")
            return
        entry.message = msg
        actions = self.layer.receive(msg, received.source, self._now())
        for action in actions:
            if type(action) is PassUp or type(action) is Absorbed:
                break
        else:
            entry.retransmission = True     # absorbed by its transaction: a copy of one seen before
        await self._run(actions)
        self._arm_timer()

    def _arm_timer(self) -> None:
        """Have the transaction layer polled at its next deadline: one timer handle, moved only
        when a deadline comes earlier than the one it waits for (a handle that fires early for a
        timer that was stopped meanwhile just polls for nothing and waits again)."""
        timer = self._timer
        if timer is not None:
            bound = self.layer.earliest()
            if bound is None or timer.when() <= bound:
                return          # it fires before any deadline there is
        deadline = self.layer.next_deadline()
        if deadline is None or self.closed:
            return
        if timer is not None:
            if timer.when() <= deadline:
                return
            timer.cancel()
        loop = self._loop or asyncio.get_running_loop()
        self._timer = loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self.closed:
            return
        try:
            actions = self.layer.poll(self._now())
            self._forget_finished_requests()
        except Exception as exc:
            self.findings.append(f"internal timer error: {type(exc).__name__}: {exc}")
            actions = []
        if actions:     # retransmissions and timeouts: carried out in order, in a task of their own
            task = (self._loop or asyncio.get_running_loop()).create_task(self._run_timer_actions(actions))
            self._timer_runs.add(task)
            task.add_done_callback(self._timer_runs.discard)
        self._arm_timer()

    async def _run_timer_actions(self, actions) -> None:
        try:
            await self._run(actions)
        except Exception as exc:
            self.findings.append(f"internal timer error: {type(exc).__name__}: {exc}")

    def _forget_finished_requests(self) -> None:
        """Drop client requests whose transaction ended (tests keep their own references)."""
        now = self._now()
        if now - self._last_sweep < 1.0:
            return
        self._last_sweep = now
        # only requests whose final answer was delivered: on TCP an error answer ends the
        # transaction at once, while its ACK may still be on its way out
        for tx in [tx for tx, cr in self._requests.items() if tx.terminated and cr.final_future.done()]:
            del self._requests[tx]

    def _now(self) -> float:
        return (self._loop or asyncio.get_running_loop()).time()

    async def _run(self, actions) -> None:
        for action in actions:
            if type(action) is Send:
                await self._send(action.message, action.dest, action.retransmission)
            elif type(action) is PassUp:
                if isinstance(action.message, Request):
                    await self._on_request(action.message, action.transaction)
                else:
                    await self._on_response(action.message, action.transaction)
            elif isinstance(action, TimedOut):
                await self._on_timeout(action)

    def _check_dest(self, dest: Address) -> None:
        """self.policy.check(dest), remembering the hosts it let through: a DestinationPolicy only
        widens (allow()), and the memory is dropped whenever its list of networks changes length
        or the agent is given another policy."""
        policy = self.policy
        if type(policy) is not DestinationPolicy:      # a policy of its own making: ask it each time
            policy.check(dest)
            return
        memo = self._sendable
        if memo[0] is not policy or memo[1] != len(policy.networks):
            memo = self._sendable = (policy, len(policy.networks), set())
        if dest[0] not in memo[2]:
            policy.check(dest)
            memo[2].add(dest[0])

    async def _send(self, msg: Request | Response, dest: Address, retransmission: bool = False,
                    data: bytes | None = None) -> None:
        """Log and send a message (`data`: its bytes, when the caller has them already)."""
        if data is None:
            data = bytes(msg)
        try:
            self._check_dest(dest)
        except TransportError as exc:
            self.findings.append(str(exc))
            cr = next((c for c in self._requests.values() if c.request is msg), None)
            if cr is not None:
                cr.fail(ExpectationFailed(f"{self.name}: {exc}"))
            return
        self.log.append(LogEntry(time.time(), "sent", data, msg, self.transport.local, dest,
                                 self.transport_kind, retransmission=retransmission, agent=self.name))
        try:
            await self.transport.send(data, dest)
        except TransportError as exc:
            self.findings.append(f"send to {dest[0]}:{dest[1]} failed: {exc}")
            cr = next((c for c in self._requests.values() if c.request is msg), None)
            if cr is not None:
                cr.fail(ExpectationFailed(f"{self.name}: {exc}"))

    async def _on_timeout(self, action: TimedOut) -> None:
        cr = self._requests.pop(action.transaction, None)
        if cr is not None and not cr.final_future.done():
            cr.fail(ExpectationFailed(
                f"{self.name}: no final response to {cr.request.method} from {cr.dest[0]}:{cr.dest[1]} "
                f"(timer {action.timer} fired after {self.timers.b:g} s)"))
        elif action.timer in ("H", "L"):
            self.findings.append(f"no ACK for our {action.transaction.last_response.status} to "
                                 f"{action.transaction.method} (timer {action.timer})")

    def _inbox_add(self, item: Inbound) -> None:
        self.inbox.append(item)
        self._unconsumed.append(item)
        if self._waiters:
            self._serve_waiters(item)

    def _serve_waiters(self, item: Inbound) -> None:
        """Hand a new arrival to the oldest expect() it satisfies. Messages that were there before
        were checked when they came (or when the wait began); an expectation with a `where`
        condition, which may read state that changed since, looks at all of them again."""
        for future, (expectation, call) in list(self._waiters.items()):
            if future.done():
                continue
            if expectation.where is None:
                found = item if not item.consumed and self._fits(item, expectation, call) else None
            else:
                found = self._match(expectation, call)
            if found is not None:
                found.consumed = True
                self._unconsumed.remove(found)
                del self._waiters[future]
                future.set_result(found)
                if found is item:
                    return

    # -- responses to our requests -------------------------------------------------------------
    async def _on_response(self, response: Response, tx) -> None:
        cr = self._requests.get(tx) if tx is not None else None
        if cr is None:
            await self._stray_response(response)
            return
        request = cr.request
        if cr.final_future.done() and request.method == "INVITE" and 200 <= response.status < 300:
            # a retransmitted 2xx (our ACK was lost or late): ACK again, nothing new to report
            if cr.call is not None and cr.call._ack is not None and self.auto_ack:
                await self._send(cr.call.ack, cr.call.peer, retransmission=True)
            return
        cr.responses.append(response)
        if len(cr.responses) == 1:
            sent_from = _first_field(request, "from")
            # a From echoed verbatim names the host we sent: nothing to parse
            if sent_from != response.header("From"):
                rewritten = echo_rewritten(sent_from, response)
                if rewritten and rewritten not in self.rewrites:
                    self.rewrites.append(rewritten)
        if (response.status in (401, 407) and self.auto_auth and self.credentials
                and not getattr(cr, "auth_tried", False)):
            await self._authenticate(cr, response)
            return
        if request.method == "INVITE":
            await self._invite_response(cr, response)
        elif cr.call is not None:
            cr.call.dialog.on_response(request, response)
            if request.method == "BYE" and response.status >= 200:
                cr.call.ended.set()
        if cr.subscription is not None:
            cr.subscription.on_response(response)
        self._inbox_add(Inbound(response, cr.dest, time.time(), request=cr))
        if response.status >= 200:
            if not cr.final_future.done():
                cr.final_future.set_result(response)
            # only a 2xx to an INVITE has more to come to us: its retransmissions, to ACK again
            # (any other transaction absorbs the copies of its final response itself)
            if tx.terminated or not (request.method == "INVITE" and response.status < 300):
                if self._requests.get(tx) is cr:
                    del self._requests[tx]

    async def _invite_response(self, cr: ClientRequest, response: Response) -> None:
        if not 200 <= response.status < 300:
            return
        call = cr.call
        if call is None or call._response is None:
            dialog = Dialog.from_uac(cr.request, response)
            if call is None:   # a new call (re-INVITEs already have theirs)
                call = Call(self, dialog, cr.request, self._next_hop_for(dialog, cr.dest))
                self.calls.append(call)
                cr.call = call
            call.response = response
        else:
            call.dialog.on_response(cr.request, response)
        if response.body:
            call.remote_sdp = response.body
        if self.auto_ack:
            await self._send_ack(call, cr.request)

    async def _send_ack(self, call: Call, invite: Request) -> None:
        ack = call.ack
        if ack is None or ack.cseq.seq != invite.cseq.seq:
            ack = call.dialog.build_request("ACK", cseq=invite.cseq.seq)
            self._add_via(ack)
            ack.add_header("Contact", f"<{self.uri}>")
            call.ack = ack
        await self._send(ack, call.peer, data=call._ack)

    async def _stray_response(self, response: Response) -> None:
        # A 2xx retransmission after the INVITE transaction: re-send the ACK (RFC 3261 §13.2.2.4).
        if response.cseq.method == "INVITE" and 200 <= response.status < 300:
            for call in self.calls:
                if call.dialog.matches(response) and call._ack is not None and self.auto_ack:
                    await self._send(call.ack, call.peer, retransmission=True)
                    return
        self.findings.append(f"response matching no transaction: {response.summary()}")

    async def _authenticate(self, cr: ClientRequest, challenge_response: Response) -> None:
        from referee.sip.digest import Challenge, authorization
        proxy = challenge_response.status == 407
        header = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        value = challenge_response.header(header)
        if value is None:
            self.findings.append(f"{challenge_response.status} without {header}")
            if not cr.final_future.done():
                cr.final_future.set_result(challenge_response)
            return
        challenge = Challenge.parse(value)
        user, password = self.credentials
        old = cr.request
        new = old.copy()
        new.raw = None
        seq = old.cseq.seq + 1
        new.set_header("CSeq", f"{seq} {old.method}")
        if cr.call is not None:
            cr.call.dialog.local_seq = max(cr.call.dialog.local_seq, seq)
        new.set_header("Proxy-Authorization" if proxy else "Authorization",
                       authorization(challenge, old.method, old.uri_text, user, password))
        new.remove_header("Via")
        branch = self._add_via(new)
        cr.auth_tried = True
        cr.request = new
        tx, actions = self.layer.send_request(new, cr.dest, self._now(), branch)
        self._requests[tx] = cr
        cr.transaction = tx
        await self._run(actions)
        self._arm_timer()

    # -- requests we receive -------------------------------------------------------------------
    def find_call(self, msg: Request | Response) -> Call | None:
        call_id = msg.call_id
        for call in reversed(self.calls):
            if call.dialog.call_id == call_id and call.dialog.matches(msg):
                return call
        return None

    async def _on_request(self, request: Request, tx) -> None:
        source = tx.dest if tx is not None else self._source_of(request)
        to_tag = request.to.tag
        call = self.find_call(request) if to_tag else None
        incoming = Incoming(self, request, source, tx, call)
        if request.method == "ACK":
            if call is not None:
                call.ack_received.set()
            self._inbox_add(Inbound(request, source, time.time(), incoming=incoming))
            return
        if to_tag and call is None:
            self._inbox_add(Inbound(request, source, time.time(), incoming=incoming))
            if request.method == "NOTIFY" and (request.call_id, to_tag) in self._refer_dialogs:
                if self.auto_notify is not None:      # the subscription of an out-of-dialog REFER
                    await self.respond(incoming, self.auto_notify)
                return
            if self.auto_unknown_dialog:
                await self.respond(incoming, 481)
            return
        if call is not None:
            try:
                call.dialog.on_request(request)
            except CSeqError as exc:
                self.findings.append(f"{request.method} in dialog {call.call_id}: {exc}")
                await self.respond(incoming, 500, "CSeq Out of Order")
                return
        self._inbox_add(Inbound(request, source, time.time(), incoming=incoming))
        await self._auto_answer(incoming, call)

    def _source_of(self, request: Request) -> Address:
        for entry in reversed(self.log):
            if entry.message is request:
                return entry.remote
        return ("", 0)

    async def _auto_answer(self, incoming: Incoming, call: Call | None) -> None:
        method = incoming.method
        if method == "INVITE":
            if call is not None:
                if incoming.request.body:
                    call.remote_sdp = incoming.request.body      # media moves with the re-INVITE
                if self.auto_reinvite is not None:
                    await self.answer(incoming, self.auto_reinvite)
                return
            if self.auto_trying:
                await self.respond(incoming, 100)
            if self.auto_answer is not None:
                await self.answer(incoming, self.auto_answer)
        elif method == "BYE" and call is not None:
            call.ended.set()
            if self.auto_bye is not None:
                await self.respond(incoming, self.auto_bye)
        elif method == "NOTIFY" and call is not None:
            for sub in call.subscriptions:
                if sub.matches(incoming.request):
                    check = sub.on_notify(incoming.request)
                    self.findings += [f"NOTIFY in {call.call_id}: {p}" for p in check.problems]
                    break
            if self.auto_notify is not None:
                await self.respond(incoming, self.auto_notify)
        elif method == "OPTIONS" and self.auto_options is not None:
            await self.respond(incoming, self.auto_options, headers={"Allow": ALLOW, "Supported": SUPPORTED,
                                                                      "Accept": "application/sdp"})
        elif method == "CANCEL" and self.auto_cancel:
            await self.respond(incoming, 200)
            invite_tx = self.layer.find_server(incoming.request.via[0].branch or "", "INVITE")
            for item in self.inbox:
                inc = item.incoming
                if inc is not None and inc.transaction is invite_tx and inc.final is None:
                    await self.respond(inc, 487)
        elif method == "UPDATE" and call is not None and self.auto_reinvite is not None:
            await self.respond(incoming, self.auto_reinvite)
        elif method == "REFER" and call is not None and self.auto_transferee:
            from . import transferee
            transferee.start(self, incoming)

    # -- building and sending requests -----------------------------------------------------------
    def _add_via(self, request: Request, branch: str | None = None) -> str:
        """Put our Via on top (a new branch unless given); returns the branch."""
        branch = branch or new_branch()
        request.add_header("Via", f"SIP/2.0/{self.transport_kind.upper()} {self.hostport};branch={branch};rport",
                           first=True)
        return branch

    def new_request(self, method: str, uri: str, to: str | None = None, call_id: str | None = None,
                    cseq: int = 1, from_tag: str | None = None) -> Request:
        """An out-of-dialog request with our From, a fresh Call-ID and tag (no Via yet)."""
        call_id = call_id or f"{secrets.token_hex(8)}-{next(self._call_ids)}@{self.host}"
        to_value = to or f"<{uri}>"
        return Request(method, uri, [
            ("Max-Forwards", "70"),
            ("From", f"<{self.aor}>;tag={from_tag or new_tag()}"),
            ("To", to_value),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}"),
            ("User-Agent", USER_AGENT),
        ])

    def _dest_for_uri(self, uri: str) -> Address:
        parsed = parse_uri(uri)
        if not isinstance(parsed, SipUri):
            raise ValueError(f"cannot send to non-SIP URI {uri}")
        host = parsed.params.get("maddr") or parsed.host
        return (host, parsed.port or (5061 if parsed.scheme == "sips" else 5060))

    def _next_hop_for(self, dialog: Dialog, fallback: Address) -> Address:
        if self.outbound is not None and not dialog.route_set:
            return self.outbound
        try:
            hop = dialog.next_hop()
        except (ValueError, SipParseError):
            return fallback
        return (hop.params.get("maddr") or hop.host, hop.port or 5060)

    async def send_request(self, request: Request, dest: Address | None = None, call: Call | None = None,
                           keep_via: bool = False) -> ClientRequest:
        """Start a client transaction for a request (adds our Via unless keep_via)."""
        branch = None
        if not keep_via or not request.has("Via"):
            branch = self._add_via(request)
        if dest is None:
            dest = call.peer if call is not None else (self.outbound or self._dest_for_uri(request.uri_text))
        cr = ClientRequest(self, request, dest, call)
        if request.method == "REFER" and call is None:
            # a REFER outside any dialog makes one (RFC 3515 §2): its NOTIFYs come in it
            self._refer_dialogs.add((request.call_id, request.from_.tag))
        tx, actions = self.layer.send_request(request, dest, self._now(), branch)
        cr.transaction = tx
        self._requests[tx] = cr
        await self._run(actions)
        self._arm_timer()
        return cr

    async def request(self, method: str, uri: str | None = None, call: Call | None = None,
                      headers: Headers = None, body: bytes = b"", content_type: str | None = None,
                      dest: Address | None = None) -> ClientRequest:
        """Send any request: in `call`'s dialog, or out of dialog to `uri`."""
        if call is not None:
            req = call.dialog.build_request(method)
        elif uri is not None:
            req = self.new_request(method, uri)
        else:
            raise ValueError("request() needs a call or a uri")
        if method in ("INVITE", "REFER", "SUBSCRIBE", "NOTIFY", "UPDATE") and not _has(headers, "Contact"):
            req.add_header("Contact", f"<{self.uri}>")
        _apply_headers(req, headers)
        if body:
            req.set_body(body, content_type)
        return await self.send_request(req, dest, call)

    async def invite(self, uri: str, headers: Headers = None, sdp: bool | bytes = True,
                     dest: Address | None = None) -> ClientRequest:
        """Send an INVITE (returns at once); the Call appears on the ClientRequest after a 2xx."""
        body = self.sdp_offer() if sdp is True else (sdp or b"")
        extra = {"Supported": SUPPORTED, "Allow": ALLOW}
        extra.update(dict(headers or {}) if not isinstance(headers, dict) else headers)
        return await self.request("INVITE", uri, headers=extra, body=body,
                                  content_type="application/sdp" if body else None, dest=dest)

    async def call(self, uri: str, headers: Headers = None, sdp: bool | bytes = True,
                   dest: Address | None = None, timeout: float = 10.0, expect: str | int = "2xx") -> Call:
        """INVITE, wait for the final response, ACK: the established Call.

        Raises ExpectationFailed if the final response is not `expect` (default any 2xx).
        """
        cr = await self.invite(uri, headers, sdp, dest)
        final = await cr.final(timeout)
        if not status_matches(expect, final.status):
            raise ExpectationFailed(f"{self.name}: INVITE {uri} answered {final.status} {final.reason}, "
                                    f"expected {expect}")
        if cr.call is None:
            raise ExpectationFailed(f"{self.name}: INVITE {uri} answered {final.status} but no dialog was made")
        return cr.call

    async def refer(self, call: Call, to: str, replaces: "Call | str | None" = None,
                    referred_by: bool | str = True, refer_sub: bool | None = None,
                    headers: Headers = None, refer_to: str | None = None) -> ClientRequest:
        """Send REFER in `call` (returns at once; await .final() for the 202).

        to: the transfer target URI; replaces: a Call (attended transfer) or a Replaces value;
        refer_to: a complete Refer-To value, overriding to/replaces (for crafted cases).
        """
        if refer_to is None:
            target = to
            if replaces is not None:
                value = replaces.replaces if isinstance(replaces, Call) else replaces
                target = f"{to}{'&' if '?' in to else '?'}Replaces={escape_header_value(value)}"
            refer_to = f"<{target}>"
        hdrs: dict[str, str | None] = {"Refer-To": refer_to}
        if referred_by:
            hdrs["Referred-By"] = f"<{self.aor}>" if referred_by is True else str(referred_by)
        if refer_sub is not None:
            hdrs["Refer-Sub"] = "true" if refer_sub else "false"
            hdrs["Supported"] = "norefersub"
        hdrs.update(dict(headers or {}) if not isinstance(headers, dict) else headers)
        cr = await self.request("REFER", call=call, headers=hdrs)
        sub = ReferSubscriber(cr.request, first_in_dialog=call.refers_sent == 0)
        call.refers_sent += 1
        call.subscriptions.append(sub)
        cr.subscription = sub
        return cr

    async def bye(self, call: Call, timeout: float = 10.0) -> Response:
        cr = await self.request("BYE", call=call)
        response = await cr.final(timeout)
        call.ended.set()
        return response

    async def cancel(self, invite: ClientRequest) -> ClientRequest:
        """CANCEL a pending INVITE (same branch, RFC 3261 §9.1)."""
        inv = invite.request
        req = Request("CANCEL", inv.uri_text, [("Via", inv.header_all("Via")[0])]
                      + [("Route", r) for r in inv.header_all("Route")]
                      + [("Max-Forwards", "70"), ("From", inv.header("From")), ("To", inv.header("To")),
                         ("Call-ID", inv.call_id), ("CSeq", f"{inv.cseq.seq} CANCEL")])
        return await self.send_request(req, invite.dest, keep_via=True)

    async def reinvite(self, call: Call, hold: bool = True, timeout: float = 10.0) -> Response:
        body = self.sdp_offer("sendonly" if hold else "sendrecv")
        cr = await self.request("INVITE", call=call, body=body, content_type="application/sdp")
        response = await cr.final(timeout)
        return response

    async def register(self, expires: int = 300, timeout: float = 5.0) -> Response:
        """REGISTER our contact for our AOR at the outbound proxy / registrar (digest answered)."""
        registrar = f"sip:{self.domain}" if self.domain else self.uri
        req = self.new_request("REGISTER", registrar, to=f"<{self.aor}>")
        req.set_header("From", f"<{self.aor}>;tag={new_tag()}")
        req.add_header("Contact", f"<{self.uri}>")
        req.add_header("Expires", str(expires))
        cr = await self.send_request(req)
        response = await cr.final(timeout)
        if not 200 <= response.status < 300:
            raise ExpectationFailed(f"{self.name}: REGISTER {self.aor} answered {response.status} {response.reason}")
        return response

    async def options(self, uri: str, dest: Address | None = None, timeout: float = 5.0) -> Response:
        cr = await self.request("OPTIONS", uri, dest=dest, headers={"Accept": "application/sdp"})
        return await cr.final(timeout)

    async def notify_transfer(self, call: Call, status: int, reason: str | None = None,
                              final: bool | None = None, notifier: ReferNotifier | None = None,
                              headers: Headers = None) -> ClientRequest:
        """Send the NOTIFY of a REFER we accepted (sipfrag with `status`)."""
        notifier = notifier or (call.notifiers[-1] if call.notifiers else None)
        if notifier is None:
            raise ValueError(f"{self.name}: no accepted REFER in {call!r} to notify about")
        base, body = notifier.notify_headers(status, reason, final)
        hdrs: dict[str, str | None] = dict(base)
        hdrs.update(dict(headers or {}) if not isinstance(headers, dict) else headers)
        content_type = hdrs.pop("Content-Type", None)
        return await self.request("NOTIFY", call=call, headers=hdrs, body=body, content_type=content_type)

    # -- answering ------------------------------------------------------------------------------
    def build_response(self, incoming: Incoming, status: int, reason: str | None = None) -> Response:
        req = incoming.request
        vias = req.header_all("Via")
        headers: list[tuple[str, str]] = [("Via", v) for v in vias[:1] and [_mark_source(vias[0], incoming.source,
                                                                                        _top_via(req))]]
        headers += [("Via", v) for v in vias[1:]]
        to = req.header("To") or ""
        to_tagged = bool(req.to.tag)
        if status > 100 and not to_tagged:
            if incoming.to_tag is None:
                incoming.to_tag = new_tag()
            to = f"{to};tag={incoming.to_tag}"
        headers += [("From", req.header("From") or ""), ("To", to), ("Call-ID", req.call_id or ""),
                    ("CSeq", req.header("CSeq") or "")]
        if req.method in ("INVITE", "SUBSCRIBE", "REFER") and 100 < status < 300 and not to_tagged:
            headers += [("Record-Route", rr) for rr in req.header_all("Record-Route")]
        if 100 < status < 300 and req.method in ("INVITE", "REFER", "SUBSCRIBE", "UPDATE"):
            headers.append(("Contact", f"<{self.uri}>"))
        if 100 < status < 300 and req.method == "INVITE":
            # what a real phone announces: a transferor may only send an attended REFER towards a
            # party that says it supports Replaces (RFC 3891 §4)
            headers += [("Allow", ALLOW), ("Supported", SUPPORTED)]
        headers.append(("User-Agent", USER_AGENT))
        return Response(status, reason or "", headers)

    async def respond(self, incoming: Incoming | Inbound, status: int, reason: str | None = None,
                      headers: Headers = None, body: bytes = b"", content_type: str | None = None) -> Response:
        incoming = _incoming(incoming)
        response = self.build_response(incoming, status, reason)
        if headers:
            _apply_headers(response, headers)
        if body:
            response.set_body(body, content_type)
        if status >= 200:
            incoming.final = response
        tx = incoming.transaction
        if tx is None:   # ACK-like requests have no transaction; send statelessly
            await self._send(response, incoming.source)
        else:
            await self._run(self.layer.respond(tx, response, self._now()))
            self._arm_timer()
        return response

    async def answer(self, incoming: Incoming | Inbound, status: int = 200, sdp: bool | bytes = True,
                     headers: Headers = None, reason: str | None = None) -> Call | None:
        """Answer an INVITE. 2xx creates (or refreshes) the Call, returned; other codes return None."""
        incoming = _incoming(incoming)
        req = incoming.request
        if incoming.method != "INVITE":
            await self.respond(incoming, status, reason, headers)
            return None
        if incoming.final is not None:
            self._raise_if_cancelled(req)
        body = b""
        if 200 <= status < 300 and sdp is not False:
            if isinstance(sdp, bytes):
                body = sdp
            else:
                body = self.sdp_answer(req.body)
        response = await self.respond(incoming, status, reason, headers, body,
                                      "application/sdp" if body else None)
        if not 200 <= status < 300:
            return None
        if incoming.call is not None:       # re-INVITE
            return incoming.call
        tag = NameAddr.parse(response.header("To")).tag or ""
        dialog = Dialog.from_uas(req, tag)
        call = Call(self, dialog, req, self._next_hop_for(dialog, incoming.source))
        call.response = response
        self.calls.append(call)
        incoming.call = call
        return call

    def _raise_if_cancelled(self, invite: Request) -> None:
        """The INVITE to answer was CANCELled by its sender (and answered 487): that is the peer's
        doing, shown by its CANCEL, not a step the suite got wrong."""
        for entry in reversed(self.log):
            msg = entry.message
            if (entry.direction == "received" and isinstance(msg, Request) and msg.method == "CANCEL"
                    and msg.call_id == invite.call_id and msg.cseq.seq == invite.cseq.seq):
                raise ExpectationFailed(
                    f"{self.name}: the INVITE ({invite.summary()}) was cancelled by its sender before it "
                    f"could be answered", [evidence_of(self.name, msg, entry.remote, entry.time, "message",
                                                       "the INVITE left ringing until answered", "CANCEL")])

    async def accept_refer(self, incoming: Incoming | Inbound, status: int = 202,
                           headers: Headers = None) -> ReferNotifier | None:
        """Answer a REFER (202 by default) and start its subscription's notifier. A REFER outside
        any dialog creates one (RFC 3515 §2): its NOTIFYs go in that new dialog."""
        incoming = _incoming(incoming)
        if incoming.call is None and incoming.to_tag is None:
            incoming.to_tag = new_tag()          # the 2xx and the new dialog share our tag
        await self.respond(incoming, status, headers=headers)
        if status >= 300:
            return None
        return self.refer_subscription(incoming)[1]

    def refer_subscription(self, refer: Incoming | Inbound) -> tuple[Call, ReferNotifier]:
        """The dialog and notifier of the subscription a received REFER creates, made on first use:
        a NOTIFY may go out before the REFER's 2xx (RFC 3515 §2.4.4 lets it overtake the 202)."""
        incoming = _incoming(refer)
        call = incoming.call
        if call is None:                         # out of dialog: the REFER makes the dialog
            if incoming.to_tag is None:
                incoming.to_tag = new_tag()
            call = Call(self, Dialog.from_uas(incoming.request, incoming.to_tag), incoming.request, incoming.source)
            self.calls.append(call)
            incoming.call = call
        if incoming.notifier is None:
            incoming.notifier = ReferNotifier(incoming.request, first_in_dialog=call.refers_received == 0)
            call.refers_received += 1
            call.notifiers.append(incoming.notifier)
        return call, incoming.notifier

    # -- raw access ---------------------------------------------------------------------------
    async def send_raw(self, data: bytes, dest: Address) -> None:
        """Send crafted bytes as they are (no transaction, no fix-ups); logged like any message."""
        self._check_dest(dest)
        try:
            msg = parse(data, stream=self.transport_kind != "udp")
        except SipParseError:
            msg = None
        self.log.append(LogEntry(time.time(), "sent", data, msg, self.transport.local, dest,
                                 self.transport_kind, agent=self.name))
        await self.transport.send(data, dest)

    def send_rtp(self, call: Call, packets: int = 10, payload_type: int = 0) -> int:
        """Send a short RTP burst to the media address the peer's latest SDP gave in this call; its
        payload names this agent and the call (media.py). Returns the count (0: no usable SDP)."""
        address = media_address(call.remote_sdp)
        if address is None or self._rtp is None:
            return 0
        for packet in tagged_packets(self.name, call.call_id, packets, payload_type):
            self._rtp.sendto(packet, address)
        call.rtp_sent_to = address
        return packets

    # -- expectations ---------------------------------------------------------------------------
    async def expect(self, what: str | int, timeout: float = 5.0, call: Call | None = None,
                     headers: dict | None = None, sipfrag: str | int | None = None, state: str | None = None,
                     where=None) -> Inbound:
        """Wait for a received request (by method) or response (by status spec) matching all
        conditions; consume and return it. Raises ExpectationFailed with what came instead."""
        expectation = Expectation(what, header_matchers(headers), sipfrag, state, where)
        started = time.time()
        item = self._match(expectation, call)
        if item is not None:
            item.consumed = True
            self._unconsumed.remove(item)
            return item
        if timeout > 0:
            # from here on, each arrival is offered to this wait as it comes (_serve_waiters):
            # nothing runs in between, so none can slip past. The future ends with the message,
            # or with None when the time is up (whichever comes first).
            loop = self._loop or asyncio.get_running_loop()
            future = loop.create_future()
            self._waiters[future] = (expectation, call)
            timer = loop.call_later(timeout, _time_up, future)
            try:
                item = await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled() and future.result() is not None:
                    self._give_back(future.result())   # handed over, but nobody takes it now
                raise
            finally:
                timer.cancel()
                self._waiters.pop(future, None)
            if item is not None:
                return item
        raise ExpectationFailed(self._explain(expectation, call, timeout),
                                self._evidence(expectation, call, timeout, started))

    async def expect_none(self, what: str | int, within: float, call: Call | None = None,
                          headers: dict | None = None, sipfrag: str | int | None = None) -> None:
        """Fail if a matching message arrives within `within` seconds."""
        expectation = Expectation(what, header_matchers(headers), sipfrag)
        try:
            item = await self.expect(what, within, call, headers, sipfrag)
        except ExpectationFailed:
            return
        raise ExpectationFailed(f"{self.name}: expected no {expectation.describe()} within {within:g} s, "
                                f"got {item.summary()}",
                                [evidence_of(self.name, item.message, item.source, item.time, "message",
                                             f"no {expectation.describe()} within {within:g} s",
                                             item.summary())])

    def _belongs(self, item: Inbound, call: Call | None) -> bool:
        if call is None:
            return True
        if item.call_id != call.call_id:
            return False
        msg = item.message
        if isinstance(msg, Response) or not msg.to.tag:
            return True
        # either side's view of the dialog: a flow may name the call by the caller's Call object
        # while the callee waits for a request in it
        tags = {msg.from_.tag, msg.to.tag}
        return tags == {call.dialog.local_tag, call.dialog.remote_tag}

    def _give_back(self, item: Inbound) -> None:
        """An item handed to a wait that was cancelled before it could take it: unconsumed again,
        in its place by arrival, and offered to the other waits."""
        item.consumed = False
        at = len(self._unconsumed)
        while at > 0 and self._unconsumed[at - 1].time > item.time:
            at -= 1
        self._unconsumed.insert(at, item)
        if self._waiters:
            self._serve_waiters(item)

    def _fits(self, item: Inbound, expectation: Expectation, call: Call | None) -> bool:
        return self._belongs(item, call) and expectation.mismatch(item.message) is None

    def _match(self, expectation: Expectation, call: Call | None) -> Inbound | None:
        for item in self._unconsumed:
            if not item.consumed and self._belongs(item, call) and expectation.mismatch(item.message) is None:
                return item
        return None

    def _explain(self, expectation: Expectation, call: Call | None, timeout: float) -> str:
        lines = [f"{self.name}: expected {expectation.describe()} within {timeout:g} s"
                 + (f" in call {call.call_id}" if call else "") + "; got"]
        pending = [i for i in self._unconsumed if not i.consumed and self._belongs(i, call)]
        if not pending:
            lines[0] += " nothing"
        for item in pending[-8:]:
            why = expectation.mismatch(item.message)
            lines.append(f"  - {item.summary()}" + (f" [{why}]" if why and why != "different method/status" else ""))
        if self.defects:
            last = self.defects[-1]
            first_line = last.raw.split(b"\n", 1)[0].strip().decode("utf-8", "replace")[:100]
            lines.append(f"  ({len(self.defects)} unparsable messages; the last, {first_line!r} from "
                         f"{last.remote[0]}:{last.remote[1]}: {last.error})")
        return "\n".join(lines)

    def _evidence(self, expectation: Expectation, call: Call | None, timeout: float,
                  started: float) -> list[Evidence]:
        """What the DUT sent instead: the latest message of the awaited kind that failed a
        condition; else what arrived unparsable while waiting; if nothing came, the absence."""
        out = []
        candidates = [i for i in self._unconsumed if not i.consumed and self._belongs(i, call)
                      and kind_matches(expectation.what, i.message)]
        if candidates:
            # the latest one: earlier ones may be steps on the way (a NOTIFY 100 before the final one)
            item = candidates[-1]
            for part, expected, seen in expectation.problems(item.message):
                out.append(evidence_of(self.name, item.message, item.source, item.time, part, expected, seen))
        if not out:
            for entry in [d for d in self.defects if d.time >= started][-3:]:
                first = entry.raw.split(b"\n", 1)[0].strip().decode("utf-8", "replace")[:120]
                src = f"{entry.remote[0]}:{entry.remote[1]}"
                out.append(Evidence(self.name, first, src, "message", f"a well-formed {expectation.what}",
                                    f"unparsable: {entry.error}", entry.time, entry.raw))
        if not out:
            where = f" in call {call.call_id}" if call else ""
            others = [i.summary() for i in self._unconsumed if not i.consumed and self._belongs(i, call)]
            seen = "nothing came" if not others else "only " + "; ".join(others[-4:])
            out.append(Evidence(self.name, "", expected=f"{expectation.describe()} within {timeout:g} s{where}",
                                seen=seen))
        return out

    def forget_messages(self) -> None:
        """Drop the log and every received message (long-running loads and benchmarks)."""
        self.log.clear()
        self.inbox.clear()
        self._unconsumed.clear()
        self.defects.clear()

    def messages(self, direction: str | None = None) -> list[Request | Response]:
        return [e.message for e in self.log if e.message is not None and
                (direction is None or e.direction == direction) and not e.retransmission]


def _first_field(msg: Request | Response, key: str) -> str | None:
    """msg.header(key) for a message we built, read from its fields as they are: a lookup by
    name would index them all, and the transaction keeps the message (and the index) a while."""
    for field in msg.header_fields:
        if field.key == key:
            return field.value
    return None


def _time_up(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _top_via(request: Request):
    """The request's top Via as parsed already (None if it does not parse)."""
    try:
        vias = request.via
    except SipParseError:
        return None
    return vias[0] if vias else None


_RPORT_RE = re.compile(r";\s*rport(?=;|$|\s)", re.IGNORECASE)


def _mark_source(via_value: str, source: Address, parsed=None) -> str:
    """The top Via of a request as the response echoes it: `received` when the request came from
    another address than its sent-by, and the `rport` value asked for (RFC 3261 §18.2.1, RFC 3581 §4).
    `parsed`: that Via parsed already, if at hand (used when it is this very text)."""
    host, port = source
    if not host:
        return via_value
    if parsed is not None and parsed.text == via_value:
        via = parsed
    else:
        try:
            via = Via.parse(via_value)
        except SipParseError:
            return via_value
    value = via_value
    if via.host.strip("[]") != host and "received=" not in value.lower():
        value += f";received={host}"
    if via.has_rport and via.rport is None:
        value = _RPORT_RE.sub(f";rport={port}", value, count=1)
    return value


def _incoming(item: Incoming | Inbound) -> Incoming:
    if isinstance(item, Inbound):
        if item.incoming is None:
            raise ValueError(f"{item.summary()} is a response; nothing to answer")
        return item.incoming
    return item


def _has(headers: Headers, name: str) -> bool:
    if not headers:
        return False
    items = headers.items() if isinstance(headers, dict) else headers
    return any(n.lower() == name.lower() for n, _ in items)


def _apply_headers(msg, headers: Headers) -> None:
    """dict: set (None removes); list of pairs: append in order."""
    if not headers:
        return
    if isinstance(headers, dict):
        for name, value in headers.items():
            if value is None:
                msg.remove_header(name)
            else:
                msg.set_header(name, str(value))
    else:
        for name, value in headers:
            msg.add_header(name, str(value))
