"""The reference phone: a pjsip user agent (via pjsua2) that reports what happens as events.

Threading model: pjsua2 runs with no worker threads of its own (`threadCnt=0`) and
`mainThreadOnly=True`, so every callback below runs inside `Phone.poll()`, on the caller's
thread. Nothing here is thread-safe and nothing needs to be.

Call handles are our own increasing numbers ("1", "2", ...), never reused, unlike pjsua call
ids which are recycled slots.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import ipaddress
import os
import random
import sys
import time
from typing import Any, Callable, Iterator

import pjsua2 as pj

from . import sipmsg

ANSWER_MODES = ("auto", "manual", "busy", "decline", "noanswer")
REFER_POLICIES = ("accept", "decline")
TRANSPORTS = ("udp", "tcp", "tls")

Emit = Callable[[str, dict[str, object]], None]


class PhoneError(Exception):
    """A command could not be carried out; the message is meant for the user."""


@dataclasses.dataclass
class PhoneConfig:
    host: str = "127.0.0.1"
    port: int = 0                       # 0: let the OS pick; the bound port is reported
    user: str = "dut"
    transport: str = "udp"
    tls_cert: str = ""                  # TLS: our server certificate and key (PEM files)
    tls_key: str = ""
    answer: str = "auto"
    refer: str = "accept"
    log_file: str = ""                  # pjsip log (SIP messages included) goes here if set
    log_level: int = 5

    def validate(self) -> None:
        if self.answer not in ANSWER_MODES:
            raise PhoneError(f"answer mode must be one of {', '.join(ANSWER_MODES)}, got {self.answer!r}")
        if self.refer not in REFER_POLICIES:
            raise PhoneError(f"refer policy must be one of {', '.join(REFER_POLICIES)}, got {self.refer!r}")
        if self.transport not in TRANSPORTS:
            raise PhoneError(f"transport must be one of {', '.join(TRANSPORTS)}, got {self.transport!r}")
        if self.transport == "tls" and not (self.tls_cert and self.tls_key):
            raise PhoneError("transport tls needs --tls-cert and --tls-key (PEM files)")
        if not 0 <= self.port <= 65535:
            raise PhoneError(f"port must be 0..65535, got {self.port}")
        try:
            version = ipaddress.ip_address(self.host).version
        except ValueError:
            raise PhoneError(f"host must be an IP address literal, got {self.host!r}") from None
        if version == 6:
            # The pjsua2-python wheel is built without PJ_HAS_IPV6: a SIP transport on ::1
            # opens, but adding the account aborts the process on an assertion.
            raise PhoneError(f"host {self.host}: IPv6 is not supported by this pjsua2 build; "
                             "use an IPv4 address")
        if not self.user or any(c in self.user for c in " <>@:;\"'"):
            raise PhoneError(f"user must be a plain SIP user part, got {self.user!r}")


def describe_error(exc: BaseException) -> str:
    """One-line text for an exception; pjsua2's pj.Error keeps its message in info()."""
    info = getattr(exc, "info", None)
    text = info() if callable(info) else str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


def _guard(method: Callable[..., None]) -> Callable[..., None]:
    """A Python exception escaping a pjsua2 callback would abort the process inside the
    SWIG director; turn it into a log event instead."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any) -> None:
        try:
            method(self, *args)
        except Exception as exc:  # noqa: BLE001 - must not escape into C++
            self.phone.emit("log", {"text": f"error in {method.__name__}: {describe_error(exc)}"})

    return wrapper


@contextlib.contextmanager
def _fd1_silenced() -> Iterator[None]:
    """pjlib logs its start-up to fd 1 before any log configuration applies; drop that."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _op(code: int = 0) -> pj.CallOpParam:
    prm = pj.CallOpParam(True)
    if code:
        prm.statusCode = code
    return prm


class PhoneCall(pj.Call):
    """One call; forwards pjsua2 callbacks to the Phone."""

    def __init__(self, phone: "Phone", handle: str, call_id: int = pj.PJSUA_INVALID_ID,
                 *, incoming: bool = False) -> None:
        super().__init__(phone.account, call_id)
        self.phone = phone
        self.handle = handle
        self.incoming = incoming
        self.state = "new"
        self.remote = ""
        self.reported_ringing = False
        self.reported_confirmed = False
        self.transfer_done = False
        # Wire facts seen by onCallTsxState, consumed by the transfer callbacks that pjsua
        # runs right after it for the same message (see Phone.on_tsx_state).
        self.rx_refer: str = ""
        self.rx_notify: str = ""
        self.rx_refer_response: tuple[int, str] | None = None

    @_guard
    def onCallTsxState(self, prm: pj.OnCallTsxStateParam) -> None:
        self.phone.on_tsx_state(self, prm.e)

    @_guard
    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        self.phone.on_call_state(self)

    @_guard
    def onCallTransferRequest(self, prm: pj.OnCallTransferRequestParam) -> None:
        self.phone.on_transfer_request(self, prm)

    @_guard
    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:
        self.phone.on_transfer_status(self, prm)

    @_guard
    def onCallReplaceRequest(self, prm: pj.OnCallReplaceRequestParam) -> None:
        self.phone.on_replace_request(self, prm)

    @_guard
    def onCallReplaced(self, prm: pj.OnCallReplacedParam) -> None:
        self.phone.on_replaced(self, prm)


class PhoneAccount(pj.Account):
    """A local account bound to the transport: no registrar, takes calls for any user part."""

    def __init__(self, phone: "Phone") -> None:
        super().__init__()
        self.phone = phone

    @_guard
    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        self.phone.on_incoming(prm)


_STATE_NAMES = {
    pj.PJSIP_INV_STATE_NULL: "null",
    pj.PJSIP_INV_STATE_CALLING: "calling",
    pj.PJSIP_INV_STATE_INCOMING: "incoming",
    pj.PJSIP_INV_STATE_EARLY: "early",
    pj.PJSIP_INV_STATE_CONNECTING: "connecting",
    pj.PJSIP_INV_STATE_CONFIRMED: "confirmed",
    pj.PJSIP_INV_STATE_DISCONNECTED: "disconnected",
}


class Phone:
    """pjsua2 endpoint + one account + the calls, driven by `poll()`."""

    def __init__(self, config: PhoneConfig, emit: Emit) -> None:
        config.validate()
        self.config = config
        self.emit = emit
        self.answer_mode = config.answer
        self.refer_policy = config.refer
        self.ep: pj.Endpoint | None = None
        self.account: PhoneAccount | None = None
        self.calls: dict[str, PhoneCall] = {}
        self.bound: tuple[str, int] = (config.host, config.port)
        self._next_handle = 1
        self._dead: list[str] = []
        self._replace_invite = ""       # INVITE text seen in onCallReplaceRequest, for onCallReplaced
        self._transfer_calls: list[PhoneCall] = []   # created for a REFER during this poll
        self._unplaced: list[PhoneCall] = []

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> tuple[str, int]:
        """Create the library, the transport and the account. Returns the bound (host, port)."""
        cfg = self.config
        ep = pj.Endpoint()
        with _fd1_silenced():
            ep.libCreate()
        self.ep = ep

        ep_cfg = pj.EpConfig()
        ep_cfg.uaConfig.threadCnt = 0
        ep_cfg.uaConfig.mainThreadOnly = True
        ep_cfg.uaConfig.maxCalls = 16
        ep_cfg.uaConfig.userAgent = f"referee-refphone pjsip/{ep.libVersion().full}"
        ep_cfg.uaConfig.natTypeInSdp = 0
        ep_cfg.uaConfig.stunIgnoreFailure = True
        ep_cfg.logConfig.consoleLevel = 0           # stdout carries the protocol only
        ep_cfg.logConfig.level = cfg.log_level if cfg.log_file else 0
        ep_cfg.logConfig.msgLogging = bool(cfg.log_file)
        if cfg.log_file:
            ep_cfg.logConfig.filename = cfg.log_file
        ep_cfg.medConfig.noVad = True
        with _fd1_silenced():
            ep.libInit(ep_cfg)
        ep.audDevManager().setNullDev()

        tp_cfg = pj.TransportConfig()
        tp_cfg.port = cfg.port
        tp_cfg.boundAddress = cfg.host
        tp_cfg.publicAddress = cfg.host
        if cfg.transport == "tls":
            # A test certificate; like the products under test we verify nobody: the agents'
            # certificates are as self-made as ours.
            tls = tp_cfg.tlsConfig
            tls.certFile = cfg.tls_cert
            tls.privKeyFile = cfg.tls_key
            tls.verifyServer = False
            tls.verifyClient = False
            tls.requireClientCert = False
        tp_type = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP,
                   "tls": pj.PJSIP_TRANSPORT_TLS}[cfg.transport]
        try:
            tp_id = ep.transportCreate(tp_type, tp_cfg)
        except pj.Error as exc:
            ep.libDestroy()
            self.ep = None
            raise PhoneError(f"cannot listen on {cfg.transport} {cfg.host} port {cfg.port}: "
                             f"{describe_error(exc)}") from None
        local = ep.transportGetInfo(tp_id).localName   # "127.0.0.1:5062"
        port = int(local.rsplit(":", 1)[1])
        self.bound = (cfg.host, port)
        ep.libStart()

        acc_cfg = pj.AccountConfig()
        acc_cfg.idUri = f"sip:{cfg.user}@{cfg.host}:{port}"
        if cfg.transport != "udp":
            acc_cfg.idUri += f";transport={cfg.transport}"
        acc_cfg.sipConfig.transportId = tp_id
        acc_cfg.regConfig.registerOnAdd = False
        nat = acc_cfg.natConfig
        nat.iceEnabled = False
        nat.turnEnabled = False
        nat.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
        nat.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
        nat.contactRewriteUse = 0
        nat.viaRewriteUse = 0
        nat.sdpNatRewriteUse = 0
        nat.udpKaIntervalSec = 0
        nat.sipOutboundUse = 0          # no registrar, so no RFC 5626 ';ob' in Contact
        med = acc_cfg.mediaConfig
        med.srtpUse = pj.PJMEDIA_SRTP_DISABLED
        med.srtpSecureSignaling = 0
        # RTP only on our own address, starting at a random even port so that several
        # phones (and other programs starting at the classic 4000) rarely collide.
        med.transportConfig.boundAddress = cfg.host
        med.transportConfig.publicAddress = cfg.host
        med.transportConfig.port = random.randrange(20000, 60000, 2)
        acc = PhoneAccount(self)
        acc.create(acc_cfg, True)
        self.account = acc
        return self.bound

    def poll(self, msec: int) -> None:
        """Run pjsip for up to msec milliseconds (callbacks fire here), then forget ended calls."""
        assert self.ep is not None
        self.ep.libHandleEvents(msec)
        self._check_transfer_calls()
        self._reap()

    def shutdown(self, timeout: float = 3.0) -> None:
        """Hang up every call, give the BYEs a moment, and destroy the library."""
        ep = self.ep
        if ep is None:
            return
        try:
            ep.hangupAllCalls()
        except pj.Error:
            pass
        deadline = time.monotonic() + timeout
        while self._live_calls() and time.monotonic() < deadline:
            ep.libHandleEvents(20)
            self._check_transfer_calls()
            self._reap()
        try:
            if self.account is not None:
                self.account.shutdown()
        except pj.Error:
            pass
        # Without NO_NETWORK, libDestroy sleeps a fixed second for unregistrations and TURN
        # shutdowns; we have neither, so skip it once every call has ended on the wire.
        ep.libDestroy(0 if self._live_calls() else pj.PJSUA_DESTROY_NO_NETWORK)
        self.ep = None

    def _check_transfer_calls(self) -> None:
        """A call pjsua was asked to place for a REFER reports 'calling' at once; one that is
        still 'new' was never placed (e.g. an unusable Refer-To; pjsua NOTIFYs 500)."""
        for call in self._transfer_calls:
            if call.state == "new":
                call.state = "disconnected"
                self.emit("disconnected", {"call": call.handle, "code": 500,
                                           "reason": "transfer call could not be placed"})
                self.calls.pop(call.handle, None)
                # pjsua2 may still point at this object (the old call's 'child'): keep it alive.
                self._unplaced.append(call)
        self._transfer_calls.clear()

    def _live_calls(self) -> list[PhoneCall]:
        return [c for c in self.calls.values() if c.state != "disconnected"]

    def _reap(self) -> None:
        # Deleting a Call inside its own callback is unsafe in pjsua2; do it here instead.
        while self._dead:
            self.calls.pop(self._dead.pop(), None)

    def _new_call(self, call_id: int = pj.PJSUA_INVALID_ID, *, incoming: bool) -> PhoneCall:
        handle = str(self._next_handle)
        self._next_handle += 1
        call = PhoneCall(self, handle, call_id, incoming=incoming)
        self.calls[handle] = call
        return call

    # -- commands --------------------------------------------------------------------------
    def _pick(self, handle: str | None, want: Callable[[PhoneCall], bool], what: str) -> PhoneCall:
        if handle:
            call = self.calls.get(handle)
            if call is None or call.state == "disconnected":
                known = ", ".join(h for h, c in self.calls.items() if c.state != "disconnected")
                raise PhoneError(f"no call {handle!r} (active calls: {known or 'none'})")
            return call
        candidates = [c for c in self.calls.values() if c.state != "disconnected" and want(c)]
        if not candidates:
            raise PhoneError(f"no {what} call")
        return candidates[-1]   # the most recent one

    def dial(self, uri: str) -> str:
        if not uri.startswith(("sip:", "sips:")):
            raise PhoneError(f"expected a sip: URI, got {uri!r}")
        call = self._new_call(incoming=False)
        call.remote = uri
        try:
            call.makeCall(uri, _op())
        except pj.Error as exc:
            self.calls.pop(call.handle, None)
            raise PhoneError(f"cannot call {uri}: {describe_error(exc)}") from None
        return call.handle

    def answer(self, handle: str | None = None) -> str:
        call = self._pick(handle, lambda c: c.incoming and c.state in ("incoming", "early"), "ringing")
        if not (call.incoming and call.state in ("incoming", "early")):
            raise PhoneError(f"call {call.handle} is {call.state}, not ringing")
        call.answer(_op(200))
        return call.handle

    def reject(self, code: int, handle: str | None = None) -> str:
        if not 300 <= code <= 699:
            raise PhoneError(f"reject code must be 300..699, got {code}")
        call = self._pick(handle, lambda c: c.incoming and c.state in ("incoming", "early"), "ringing")
        if not (call.incoming and call.state in ("incoming", "early")):
            raise PhoneError(f"call {call.handle} is {call.state}, not ringing")
        call.hangup(_op(code))
        return call.handle

    def hangup(self, handle: str | None = None) -> str:
        call = self._pick(handle, lambda c: True, "active")
        call.hangup(_op())
        return call.handle

    def hold(self, handle: str | None = None) -> str:
        call = self._pick(handle, lambda c: c.state == "confirmed", "confirmed")
        if call.state != "confirmed":
            raise PhoneError(f"call {call.handle} is {call.state}, not confirmed")
        try:
            call.setHold(_op())
        except pj.Error as exc:
            raise PhoneError(f"cannot hold call {call.handle}: {describe_error(exc)}") from None
        return call.handle

    def xfer(self, handle: str, uri: str, refer_sub: bool = True) -> str:
        """Blind transfer. refer_sub=False asks for no implicit subscription (RFC 4488)."""
        if not uri.startswith(("sip:", "sips:")):
            raise PhoneError(f"expected a sip: URI, got {uri!r}")
        call = self._pick(handle, lambda c: True, "active")
        prm = _op()
        if not refer_sub:
            hdr = pj.SipHeader()
            hdr.hName = "Refer-Sub"
            hdr.hValue = "false"
            prm.txOption.headers.append(hdr)
        try:
            call.xfer(uri, prm)
        except pj.Error as exc:
            raise PhoneError(f"cannot transfer call {call.handle}: {describe_error(exc)}") from None
        return call.handle

    def axfer(self, handle: str, consult: str) -> str:
        call = self._pick(handle, lambda c: True, "active")
        other = self._pick(consult, lambda c: True, "active")
        if call is other:
            raise PhoneError("the call to transfer and the consultation call must differ")
        try:
            call.xferReplaces(other, _op())
        except pj.Error as exc:
            raise PhoneError(f"cannot transfer call {call.handle} to call {other.handle}: "
                             f"{describe_error(exc)}") from None
        return call.handle

    def set_answer_mode(self, mode: str) -> None:
        if mode not in ANSWER_MODES:
            raise PhoneError(f"answer mode must be one of {', '.join(ANSWER_MODES)}, got {mode!r}")
        self.answer_mode = mode

    def set_refer_policy(self, policy: str) -> None:
        if policy not in REFER_POLICIES:
            raise PhoneError(f"refer policy must be one of {', '.join(REFER_POLICIES)}, got {policy!r}")
        self.refer_policy = policy

    def list_calls(self) -> list[tuple[str, str, str]]:
        return [(c.handle, c.state, c.remote) for c in self._live_calls()]

    # -- pjsua2 callbacks (via PhoneCall / PhoneAccount) -------------------------------------
    def on_incoming(self, prm: pj.OnIncomingCallParam) -> None:
        call = self._new_call(prm.callId, incoming=True)
        invite = prm.rdata.wholeMsg
        call.state = "incoming"
        call.remote = sipmsg.bare_uri(sipmsg.header(invite, "from"))
        self.emit("incoming", self._invite_fields(call, invite, replaces=False))
        mode = self.answer_mode
        if mode == "busy":
            call.hangup(_op(486))
        elif mode == "decline":
            call.hangup(_op(603))
        else:
            call.answer(_op(180))
            if mode == "auto":
                call.answer(_op(200))

    def _invite_fields(self, call: PhoneCall, invite: str, *, replaces: bool) -> dict[str, object]:
        fields: dict[str, object] = {
            "call": call.handle,
            "remote": call.remote,
            "replaces": "1" if replaces else "0",
            "request_uri": sipmsg.request_uri(invite),
            "sip_call_id": sipmsg.header(invite, "call-id"),
        }
        for name, key in (("replaces", "replaces_header"), ("referred-by", "referred_by")):
            value = sipmsg.header(invite, name)
            if value:
                fields[key] = value
        return fields

    def on_call_state(self, call: PhoneCall) -> None:
        info = call.getInfo()
        state = _STATE_NAMES.get(info.state, str(info.state))
        call.state = state
        if not call.remote:
            call.remote = sipmsg.bare_uri(info.remoteUri)
        if (state == "early" and not call.incoming and not call.reported_ringing
                and 180 <= info.lastStatusCode < 190):
            call.reported_ringing = True
            self.emit("ringing", {"call": call.handle, "code": info.lastStatusCode})
        elif state == "confirmed" and not call.reported_confirmed:
            call.reported_confirmed = True
            self.emit("confirmed", {"call": call.handle, "remote": call.remote,
                                    "sip_call_id": info.callIdString})
        elif state == "disconnected":
            self.emit("disconnected", {"call": call.handle, "code": info.lastStatusCode or "",
                                       "reason": info.lastReason})
            self._dead.append(call.handle)

    def on_tsx_state(self, call: PhoneCall, event: pj.SipEvent) -> None:
        """Remember the REFER / NOTIFY / REFER response just received on this call.

        pjsua calls onCallTsxState before its own REFER handling, so the transfer callbacks
        that follow can report what really was on the wire (pjsua itself reports a REFER
        2xx as a pseudo status '100 Accepted', indistinguishable from a NOTIFY)."""
        if event.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        tsx_event = event.body.tsxState
        if tsx_event.type != pj.PJSIP_EVENT_RX_MSG:
            return
        tsx = tsx_event.tsx
        method = tsx.method
        if tsx.role == pj.PJSIP_ROLE_UAS and tsx.state == pj.PJSIP_TSX_STATE_TRYING:
            if method == "REFER":
                call.rx_refer = tsx_event.src.rdata.wholeMsg
            elif method == "NOTIFY":
                call.rx_notify = tsx_event.src.rdata.wholeMsg
        elif tsx.role == pj.PJSIP_ROLE_UAC and method == "REFER" and tsx.statusCode >= 200:
            call.rx_refer_response = (tsx.statusCode, tsx_event.src.rdata.wholeMsg)

    def on_transfer_request(self, call: PhoneCall, prm: pj.OnCallTransferRequestParam) -> None:
        refer, call.rx_refer = call.rx_refer, ""
        fields: dict[str, object] = {"call": call.handle, "target": prm.dstUri}
        for name, key in (("referred-by", "referred_by"), ("refer-sub", "refer_sub")):
            value = sipmsg.header(refer, name)
            if value:
                fields[key] = value
        if self.refer_policy == "decline":
            prm.statusCode = 603
            fields["accepted"] = "0"
            fields["status"] = 603
        else:
            # Give pjsua2 our own Call object for the new call, or its events would be lost.
            new_call = self._new_call(incoming=False)
            new_call.remote = sipmsg.bare_uri(prm.dstUri).split("?", 1)[0]   # no ?Replaces=...
            prm.newCall = new_call
            self._transfer_calls.append(new_call)
            fields["accepted"] = "1"
            fields["status"] = prm.statusCode
            fields["new_call"] = new_call.handle
        self.emit("transfer_request", fields)

    def on_transfer_status(self, call: PhoneCall, prm: pj.OnCallTransferStatusParam) -> None:
        final = bool(prm.finalNotify)
        fields: dict[str, object] = {"call": call.handle}
        notify, call.rx_notify = call.rx_notify, ""
        response, call.rx_refer_response = call.rx_refer_response, None
        if notify:
            frag = sipmsg.body(notify).strip().splitlines()
            fields.update(code=prm.statusCode, reason=prm.reason, source="notify",
                          sipfrag=frag[0] if frag else "",
                          subscription_state=sipmsg.header(notify, "subscription-state"))
        elif response is not None:
            # The answer to our REFER: 202 (subscription follows, or none with Refer-Sub:
            # false) or an error that ends the transfer attempt.
            code, text = response
            fields.update(code=code, reason=prm.reason, source="response")
            refer_sub = sipmsg.header(text, "refer-sub")
            if refer_sub:
                fields["refer_sub"] = refer_sub
        else:
            fields.update(code=prm.statusCode, reason=prm.reason, source="local")
        fields["final"] = "1" if final else "0"
        self.emit("transfer_status", fields)
        # Like the pjsua application: once the transfer is reported successful (2xx), the
        # transferor hangs up the original call and stops listening for NOTIFYs.
        code = int(fields["code"])   # type: ignore[call-overload]
        if final and 200 <= code < 300 and not call.transfer_done:
            call.transfer_done = True
            prm.cont = False
            self.emit("log", {"text": f"call {call.handle} transferred, hanging up"})
            call.hangup(_op())

    def on_replace_request(self, call: PhoneCall, prm: pj.OnCallReplaceRequestParam) -> None:
        self._replace_invite = prm.rdata.wholeMsg

    def on_replaced(self, call: PhoneCall, prm: pj.OnCallReplacedParam) -> None:
        # pjsua answers the replacing INVITE itself and ends the replaced call; it does not
        # call onIncomingCall, so this is where the new call becomes visible.
        new_call = self._new_call(prm.newCallId, incoming=True)
        prm.newCall = new_call
        invite, self._replace_invite = self._replace_invite, ""
        new_call.state = "incoming"
        new_call.remote = sipmsg.bare_uri(sipmsg.header(invite, "from"))
        fields = self._invite_fields(new_call, invite, replaces=True)
        fields["replaced_call"] = call.handle
        self.emit("incoming", fields)
