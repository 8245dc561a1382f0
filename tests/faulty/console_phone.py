"""A drivable test phone: referee's Agent behind the reference phone's console protocol, with faults.

It plays the transferor (the suite makes it dial and transfer) and the transfer target (it
answers INVITEs with Replaces per RFC 3891 §3). Correct by default; each fault breaks exactly
one behaviour, so that the transferor and target suites can be shown to fail where a real
device would. A profile with `driver = "console"` launches it:

    python tests/faulty/console_phone.py --port 0 [--host 127.0.0.1] [--user dut]
        [--answer auto|manual|busy|decline|noanswer] [--faults no_contact,keep_replaced]

Protocol (see referee/dut/refphone/protocol.py): prints `READY <host> <port>` once listening
(the real port when --port 0), then answers each stdin command with one OK/ERR line and
reports what happens as EVENT lines. Commands: dial, answer, reject, hangup, hold, xfer,
axfer, answer-mode, refer-policy, calls, quit.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import os
import pathlib
import shlex
import signal
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from referee.agent import Agent, ExpectationFailed  # noqa: E402
from referee.agent.agent import ALLOW  # noqa: E402
from referee.agent.objects import Call, ClientRequest, Inbound  # noqa: E402
from referee.dut.refphone import protocol  # noqa: E402
from referee.sip import Replaces, SipParseError, escape_header_value  # noqa: E402
from referee.stack import Dialog, ReferSubscriber  # noqa: E402

# fault name -> what the phone then does wrong (the requirement it breaks is in the test purpose)
FAULTS = {
    # as transferor
    "two_refer_to": "sends the REFER with two Refer-To header fields",
    "no_contact": "sends the REFER without a Contact header field",
    "refer_outside_dialog": "sends the REFER outside the call's dialog (new Call-ID, no Target-Dialog)",
    "two_referred_by": "sends the REFER with two Referred-By header fields",
    "notify_500": "answers the NOTIFYs of its REFER with 500 (it still acts on them)",
    "early_notify_481": "rejects with 481 a NOTIFY that arrives before the REFER's 2xx",
    "no_bye_after_success": "keeps the original call after a 2xx sipfrag NOTIFY (never hangs up)",
    "bye_after_failure": "hangs up the original call after a failed transfer (non-2xx sipfrag)",
    "axfer_wrong_tags": "attended transfer: Replaces names the consultation dialog with its own tags "
                        "(to-tag and from-tag swapped)",
    "axfer_unescaped": "attended transfer: puts the Replaces into the Refer-To URI without escaping",
    # as transfer target
    "reject_replaces": "rejects with 488 an INVITE whose Replaces matches a confirmed dialog",
    "keep_replaced": "accepts an INVITE with Replaces but never ends the replaced dialog",
    "bye_replacement": "after ending the replaced dialog, also hangs up the replacement call",
    "accept_bad_replaces": "accepts an INVITE whose Replaces matches no dialog (instead of 481)",
    "ignore_early_only": "accepts Replaces;early-only for a confirmed dialog (instead of 486)",
    "two_replaces_ok": "accepts an INVITE with two Replaces header fields (instead of 400)",
    "no_cancel_early": "replacing its own early dialog, answers the new INVITE but never CANCELs the old one",
    "replace_incoming_early": "lets a Replaces take over an incoming ringing call (instead of 481)",
    "reject_referred_by": "rejects an INVITE carrying Referred-By with 403",
    "no_supported_replaces": "leaves 'replaces' out of the Supported header of its OPTIONS answer",
}

ANSWER_MODES = ("auto", "manual", "busy", "decline", "noanswer")
SUPPORTED = "replaces, norefersub"


@dataclasses.dataclass(eq=False)
class Slot:
    """One call as the console numbers it."""
    handle: str
    state: str                            # calling | early | incoming | confirmed | disconnected
    call: Call | None = None              # once established
    invite: ClientRequest | None = None   # our INVITE (outgoing calls)
    incoming: Inbound | None = None       # their INVITE (incoming calls)


@dataclasses.dataclass(eq=False)
class Transfer:
    """A REFER we sent and the call it transfers."""
    slot: Slot
    refer: ClientRequest
    subscription: ReferSubscriber
    dialog: Call                          # where its NOTIFYs arrive (the call, or the REFER's own dialog)
    done: bool = False


class ConsolePhone:
    def __init__(self, agent: Agent, faults: set[str], answer: str, out) -> None:
        self.agent = agent
        self.faults = faults
        self.answer_mode = answer
        self.refer_policy = "accept"    # kept for the protocol; this phone does not play the transferee
        self.out = out
        self.slots: dict[str, Slot] = {}
        self.transfers: list[Transfer] = []
        self._ids = itertools.count(0)
        agent.auto_answer = None
        agent.auto_notify = None      # NOTIFYs are answered here (faults, early NOTIFYs)
        agent.auto_options = None     # OPTIONS too (Supported)
        agent.auto_unknown_dialog = False   # a NOTIFY may create the dialog of a REFER sent outside one
        self.tasks: set[asyncio.Task] = set()

    def has(self, fault: str) -> bool:
        return fault in self.faults

    def event(self, kind: str, **fields) -> None:
        self.out(protocol.format_event(kind, fields))

    def spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded(coro))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _guarded(self, coro) -> None:
        try:
            await coro
        except Exception as exc:   # a broken flow must not stop the phone
            self.event("log", text=f"error: {type(exc).__name__}: {exc}")

    def new_slot(self, state: str, **kw) -> Slot:
        slot = Slot(str(next(self._ids)), state, **kw)
        self.slots[slot.handle] = slot
        return slot

    def slot_of_call(self, call: Call | None) -> Slot | None:
        return next((s for s in self.slots.values() if call is not None and s.call is call), None)

    def slot(self, handle: str | None, states: tuple[str, ...] = ()) -> Slot:
        if handle is None:
            candidates = [s for s in self.slots.values() if not states or s.state in states]
            if not candidates:
                raise ValueError(f"no call in state {'/'.join(states) or 'any'}")
            return candidates[-1]
        if handle not in self.slots:
            raise ValueError(f"no call {handle!r}")
        return self.slots[handle]

    def set_state(self, slot: Slot, state: str, **fields) -> None:
        if slot.state == state:
            return
        slot.state = state
        if state in ("confirmed", "disconnected", "ringing"):
            self.event(state, call=slot.handle, **fields)

    # -- commands ------------------------------------------------------------------------------
    async def command(self, line: str) -> str:
        try:
            words = shlex.split(line)
        except ValueError as exc:
            return protocol.format_err(f"cannot split {line!r}: {exc}")
        if not words:
            return protocol.format_err("empty command")
        name, args = words[0], words[1:]
        handler = getattr(self, "cmd_" + name.replace("-", "_"), None)
        if handler is None:
            return protocol.format_err(f"unknown command {name!r}")
        try:
            return protocol.format_ok(await handler(*args))
        except TypeError as exc:
            return protocol.format_err(f"{name}: bad arguments ({exc})")
        except (ValueError, ExpectationFailed, SipParseError) as exc:
            return protocol.format_err(f"{name}: {exc}")

    async def cmd_dial(self, uri: str) -> dict:
        slot = self.new_slot("calling")
        slot.invite = await self.agent.invite(uri, headers={"Supported": SUPPORTED, "Allow": ALLOW})
        self.spawn(self.follow_outgoing(slot))
        return {"call": slot.handle}

    async def follow_outgoing(self, slot: Slot) -> None:
        cr = slot.invite
        seen = 0
        while not cr.final_future.done():
            for response in cr.responses[seen:]:
                seen += 1
                if 100 < response.status < 200:
                    slot.state = "early" if response.to.tag else slot.state
                    self.event("ringing", call=slot.handle, code=response.status)
            await asyncio.sleep(0.02)
        try:
            final = cr.final_future.result()
        except Exception:
            self.set_state(slot, "disconnected", code=408, reason="no answer")
            return
        if 200 <= final.status < 300 and cr.call is not None:
            slot.call = cr.call
            self.set_state(slot, "confirmed", remote=cr.request.uri_text, sip_call_id=cr.call.call_id)
        else:
            self.set_state(slot, "disconnected", code=final.status, reason=final.reason)

    async def cmd_answer(self, handle: str | None = None) -> dict:
        slot = self.slot(handle, ("incoming",))
        await self.answer(slot)
        return {"call": slot.handle}

    async def answer(self, slot: Slot) -> None:
        call = await self.agent.answer(slot.incoming, 200, headers={"Supported": SUPPORTED, "Allow": ALLOW})
        slot.call = call
        self.set_state(slot, "confirmed", remote=slot.incoming.message.header("From") or "",
                       sip_call_id=call.call_id)

    async def cmd_reject(self, code: str, handle: str | None = None) -> dict:
        slot = self.slot(handle, ("incoming",))
        await self.agent.respond(slot.incoming, int(code))
        self.set_state(slot, "disconnected", code=int(code), reason="rejected")
        return {"call": slot.handle}

    async def cmd_hangup(self, handle: str | None = None) -> dict:
        slot = self.slot(handle, ("calling", "early", "incoming", "confirmed"))
        await self.hangup(slot)
        return {"call": slot.handle}

    async def hangup(self, slot: Slot) -> None:
        if slot.state == "confirmed" and slot.call is not None and slot.call.is_up:
            self.set_state(slot, "disconnected", code=200, reason="hangup")
            await self.agent.bye(slot.call, timeout=3)
        elif slot.state in ("calling", "early") and slot.invite is not None:
            await self.agent.cancel(slot.invite)
        elif slot.state == "incoming" and slot.incoming is not None:
            await self.agent.respond(slot.incoming, 603)
            self.set_state(slot, "disconnected", code=603, reason="hangup")

    async def cmd_hold(self, handle: str | None = None) -> dict:
        slot = self.slot(handle, ("confirmed",))
        await self.agent.reinvite(slot.call, hold=True, timeout=5)
        return {"call": slot.handle}

    async def cmd_answer_mode(self, mode: str) -> dict:
        if mode not in ANSWER_MODES:
            raise ValueError(f"answer mode must be one of {', '.join(ANSWER_MODES)}")
        self.answer_mode = mode
        return {"answer": mode}

    async def cmd_refer_policy(self, policy: str) -> dict:
        if policy not in ("accept", "decline"):
            raise ValueError("refer policy must be accept or decline")
        self.refer_policy = policy
        return {"refer": policy}

    async def cmd_calls(self) -> dict:
        live = [s for s in self.slots.values() if s.state != "disconnected"]
        return {"count": len(live), "calls": " ".join(f"{s.handle}={s.state}" for s in live)}

    # -- transfers (we are the transferor) ---------------------------------------------------
    async def cmd_xfer(self, handle: str, uri: str, option: str | None = None) -> dict:
        slot = self.slot(handle, ("confirmed",))
        if slot.state != "confirmed":
            raise ValueError(f"call {handle} is {slot.state}, not confirmed")
        headers = [("Refer-To", f"<{uri}>")]
        if option == "norefersub":
            headers += [("Refer-Sub", "false"), ("Supported", "norefersub")]
        await self.send_refer(slot, headers)
        return {"call": slot.handle}

    async def cmd_axfer(self, handle: str, consult: str) -> dict:
        slot = self.slot(handle, ("confirmed",))
        other = self.slot(consult, ("confirmed",))
        if slot.state != "confirmed" or other.state != "confirmed":
            raise ValueError("both calls must be confirmed")
        d = other.call.dialog
        # RFC 3891 §3: the target compares to-tag with its local tag, from-tag with its remote tag
        to_tag, from_tag = (d.local_tag, d.remote_tag) if self.has("axfer_wrong_tags") else (d.remote_tag, d.local_tag)
        value = f"{d.call_id};to-tag={to_tag};from-tag={from_tag}"
        if not self.has("axfer_unescaped"):
            value = escape_header_value(value)
        await self.send_refer(slot, [("Refer-To", f"<{d.remote_target}?Replaces={value}>")])
        return {"call": slot.handle}

    async def send_refer(self, slot: Slot, headers: list[tuple[str, str]]) -> None:
        call = slot.call
        agent = self.agent
        if self.has("refer_outside_dialog"):
            d = call.dialog
            req = agent.new_request("REFER", d.remote_target, to=d.remote_uri)
        else:
            req = call.dialog.build_request("REFER")
        if self.has("two_refer_to"):
            headers = headers + [h for h in headers if h[0] == "Refer-To"]
        headers.append(("Referred-By", f"<{agent.aor}>"))
        if self.has("two_referred_by"):
            headers.append(("Referred-By", f"<{agent.aor}>"))
        if not self.has("no_contact"):
            headers.append(("Contact", f"<{agent.uri}>"))
        for name, value in headers:
            req.add_header(name, value)
        outside = self.has("refer_outside_dialog")
        cr = await agent.send_request(req, dest=call.peer if outside else None, call=None if outside else call)
        sub = ReferSubscriber(req, first_in_dialog=outside or call.refers_sent == 0)
        cr.subscription = sub
        if not outside:
            call.refers_sent += 1
            call.subscriptions.append(sub)
        transfer = Transfer(slot, cr, sub, call)
        self.transfers.append(transfer)
        self.spawn(self.follow_refer(transfer, outside))

    async def follow_refer(self, transfer: Transfer, outside: bool) -> None:
        try:
            response = await transfer.refer.final(32)
        except ExpectationFailed:
            self.event("transfer_status", call=transfer.slot.handle, code=408, reason="no answer",
                       final=1, source="local")
            return
        fields = {"call": transfer.slot.handle, "code": response.status, "reason": response.reason,
                  "source": "response"}
        if response.status >= 300 or response.refer_sub is False:
            transfer.done = True
            self.event("transfer_status", **fields, final=1)
            return
        self.event("transfer_status", **fields, final=0)
        if outside and transfer.dialog is transfer.slot.call:
            # the REFER made a dialog of its own: its NOTIFYs come there
            self.adopt_dialog(transfer, Dialog.from_uac(transfer.refer.request, response))

    def transfer_for(self, notify: Inbound) -> Transfer | None:
        call = notify.incoming.call
        request = notify.message
        for transfer in reversed(self.transfers):
            if not transfer.subscription.matches(request):
                continue
            if call is not None:
                if transfer.dialog is call:
                    return transfer
                continue
            if transfer.dialog is not transfer.slot.call and transfer.dialog.dialog.matches(request):
                return transfer     # its dialog was made (from the 202) after this NOTIFY arrived
            refer = transfer.refer.request
            if (call is None and transfer.dialog is transfer.slot.call and refer.call_id == request.call_id
                    and refer.from_.tag == request.to.tag and transfer.slot.call.call_id != refer.call_id):
                # RFC 3515 §2.4.4 / RFC 6665: the NOTIFY overtook the 202 of a REFER sent outside any
                # dialog; it creates the subscription's dialog
                self.adopt_dialog(transfer, Dialog.from_uas(request, refer.from_.tag))
                return transfer
        return None

    def adopt_dialog(self, transfer: Transfer, dialog: Dialog) -> None:
        dialog.is_uac = True
        dialog.local_seq = transfer.refer.request.cseq.seq
        dialog.remote_seq = None
        sub_call = Call(self.agent, dialog, transfer.refer.request, transfer.refer.dest)
        sub_call.subscriptions.append(transfer.subscription)
        self.agent.calls.append(sub_call)
        transfer.dialog = sub_call

    async def on_notify(self, item: Inbound) -> None:
        transfer = self.transfer_for(item)
        if transfer is None:
            await self.agent.respond(item, 481)
            return
        if self.has("early_notify_481") and not transfer.refer.final_future.done():
            await self.agent.respond(item, 481)
            return
        request = item.message
        check = transfer.subscription.on_notify(request)
        await self.agent.respond(item, 500 if self.has("notify_500") else 200)
        if check.status is None:
            return
        final = check.state == "terminated" or check.status >= 200
        self.event("transfer_status", call=transfer.slot.handle, code=check.status, final=int(final),
                   source="notify", subscription_state=request.header("Subscription-State") or "")
        if transfer.done or check.status < 200:
            return
        transfer.done = True
        slot = transfer.slot
        success = check.status < 300
        if (success and not self.has("no_bye_after_success")) or (not success and self.has("bye_after_failure")):
            if slot.call is not None and slot.call.is_up:
                await self.hangup(slot)

    # -- incoming requests -------------------------------------------------------------------------
    async def serve(self) -> None:
        while True:
            try:
                item = await self.agent.expect("*", timeout=3600)
            except ExpectationFailed:
                continue
            self.spawn(self.handle(item))

    async def handle(self, item: Inbound) -> None:
        method = item.message.method
        incoming = item.incoming
        if method == "INVITE" and incoming.call is None and not item.message.to.tag:
            await self.on_invite(item)
        elif method == "NOTIFY":
            await self.on_notify(item)
        elif item.message.to.tag and incoming.call is None:
            if method != "ACK":
                await self.agent.respond(item, 481)
        elif method == "OPTIONS":
            supported = "norefersub" if self.has("no_supported_replaces") else SUPPORTED
            await self.agent.respond(item, 200, headers={"Allow": ALLOW, "Supported": supported,
                                                         "Accept": "application/sdp"})
        elif method == "BYE":
            slot = self.slot_of_call(incoming.call)
            if slot is not None:
                self.set_state(slot, "disconnected", code=200, reason="remote hangup")
        elif method == "CANCEL":
            for slot in self.slots.values():
                if slot.state == "incoming" and slot.incoming.message.call_id == item.message.call_id:
                    self.set_state(slot, "disconnected", code=487, reason="cancelled")
        elif method == "REFER":
            await self.agent.respond(item, 603 if incoming.call is not None else 481)
        elif method not in ("ACK", "INVITE", "UPDATE") and incoming.final is None:
            await self.agent.respond(item, 501)

    async def on_invite(self, item: Inbound) -> None:
        request = item.message
        count = request.count("Replaces")
        if count:
            if count > 1 and not self.has("two_replaces_ok"):
                await self.agent.respond(item, 400, "Multiple Replaces")
                return
            try:
                replaces = Replaces.parse(request.header("Replaces"))
            except SipParseError:
                await self.agent.respond(item, 400, "Bad Replaces")
                return
            await self.on_replaces(item, replaces)
            return
        if request.has("Referred-By") and self.has("reject_referred_by"):
            await self.agent.respond(item, 403)
            return
        slot = self.new_slot("incoming", incoming=item)
        self.event("incoming", call=slot.handle, remote=request.header("From") or "", replaces=0,
                   request_uri=request.uri_text, sip_call_id=request.call_id or "",
                   referred_by=request.header("Referred-By") or "")
        mode = self.answer_mode
        if mode == "busy":
            await self.agent.respond(item, 486)
            self.set_state(slot, "disconnected", code=486, reason="busy")
        elif mode == "decline":
            await self.agent.respond(item, 603)
            self.set_state(slot, "disconnected", code=603, reason="declined")
        else:
            await self.agent.respond(item, 180)
            if mode == "auto":
                await self.answer(slot)

    def match(self, r: Replaces) -> tuple[str, Slot] | None:
        """RFC 3891 §3: to-tag is compared with our local tag, from-tag with the remote tag."""
        for slot in self.slots.values():
            if slot.state == "confirmed" and slot.call is not None:
                d = slot.call.dialog
                if (d.call_id, d.local_tag, d.remote_tag) == (r.call_id, r.to_tag, r.from_tag):
                    return "confirmed", slot
            elif slot.state in ("calling", "early") and slot.invite is not None:
                inv = slot.invite.request
                tags = {resp.to.tag for resp in slot.invite.responses if resp.status > 100 and resp.to.tag}
                if inv.call_id == r.call_id and inv.from_.tag == r.to_tag and r.from_tag in tags:
                    return "early-ours", slot
            elif slot.state == "incoming" and slot.incoming is not None:
                inv = slot.incoming.message
                if (inv.call_id, slot.incoming.incoming.to_tag, inv.from_.tag) == (r.call_id, r.to_tag, r.from_tag):
                    return "early-theirs", slot
        return None

    async def on_replaces(self, item: Inbound, replaces: Replaces) -> None:
        found = self.match(replaces)
        kind, old = found if found else (None, None)
        if kind is None and not self.has("accept_bad_replaces"):
            await self.agent.respond(item, 481)
            return
        if kind == "early-theirs" and not self.has("replace_incoming_early"):
            await self.agent.respond(item, 481)
            return
        if kind == "confirmed" and replaces.early_only and not self.has("ignore_early_only"):
            await self.agent.respond(item, 486)
            return
        if kind == "confirmed" and self.has("reject_replaces"):
            await self.agent.respond(item, 488)
            return
        slot = self.new_slot("incoming", incoming=item)
        self.event("incoming", call=slot.handle, remote=item.message.header("From") or "", replaces=1,
                   replaced_call=old.handle if old else "", sip_call_id=item.message.call_id or "")
        await self.answer(slot)
        if kind == "confirmed" and not self.has("keep_replaced"):
            await self.hangup(old)
            if self.has("bye_replacement"):
                await self.hangup(slot)
        elif kind == "early-ours" and not self.has("no_cancel_early"):
            await self.hangup(old)
        elif kind == "early-theirs":
            await self.agent.respond(old.incoming, 487)
            self.set_state(old, "disconnected", code=487, reason="replaced")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--user", default="dut")
    parser.add_argument("--transport", default="udp", choices=("udp", "tcp"))
    parser.add_argument("--answer", default="auto", choices=ANSWER_MODES)
    parser.add_argument("--refer", default="accept", choices=("accept", "decline"))
    parser.add_argument("--faults", default="", help=f"comma-separated: {', '.join(FAULTS)}")
    args = parser.parse_args()
    faults = {f for f in args.faults.split(",") if f}
    unknown = faults - set(FAULTS)
    if unknown:
        print(protocol.format_err(f"unknown faults: {', '.join(sorted(unknown))}"), flush=True)
        return 2

    def out(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    try:
        agent = await Agent.start("dut", args.host, args.port, args.transport, user=args.user)
    except OSError as exc:
        out(protocol.format_err(f"cannot listen on {args.host}:{args.port}: {exc}"))
        return 2
    phone = ConsolePhone(agent, faults, args.answer, out)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    pending = bytearray()
    fd = sys.stdin.fileno()

    def readable() -> None:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            lines.put_nowait(None)
            return
        pending.extend(data)
        while b"\n" in pending:
            raw, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            text = raw.decode("utf-8", "replace").strip()
            if text:
                lines.put_nowait(text)

    loop.add_reader(fd, readable)
    out(f"READY {agent.host} {agent.port}")
    server = loop.create_task(phone.serve())

    async def commands() -> None:
        while True:
            line = await lines.get()
            if line is None:
                return
            if line.split()[0] == "quit":
                out(protocol.format_ok({}))
                return
            out(await phone.command(line))

    reader = loop.create_task(commands())
    stopper = loop.create_task(stop.wait())
    await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
    # hang up what is still up (the BYEs go out; their answers are not waited for), then leave
    for slot in phone.slots.values():
        if slot.state == "confirmed" and slot.call is not None and slot.call.is_up:
            await agent.request("BYE", call=slot.call)
    await asyncio.sleep(0.05)
    for task in (server, reader, stopper, *phone.tasks):
        task.cancel()
    await asyncio.gather(server, reader, stopper, *phone.tasks, return_exceptions=True)
    loop.remove_reader(fd)
    await agent.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
