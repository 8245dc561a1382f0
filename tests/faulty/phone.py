"""A phone built on referee's own Agent, correct by default, with switchable faults.

It is the proof that each conformance test can fail: run the suite against it with one fault
switched on and exactly the test purposes that fault violates must fail; with no fault, all
must pass. Launched by a profile's `launch` command:

    python tests/faulty/phone.py --port 5080 [--faults refer_200,no_notify] [--answer auto]

Prints READY when listening; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import signal
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from referee.agent import Agent, ExpectationFailed  # noqa: E402
from referee.agent.objects import Call, Inbound  # noqa: E402
from referee.sip import Replaces, SipParseError, SipUri, parse_uri  # noqa: E402
from referee.sip.sipfrag import Sipfrag  # noqa: E402

# fault name -> what the phone then does wrong (the requirement it breaks is in the scenario)
FAULTS = {
    "refer_200": "answers an accepted REFER with 200 OK instead of 202 Accepted",
    "no_notify": "sends no NOTIFY at all after accepting a REFER",
    "no_initial_notify": "skips the immediate NOTIFY (100 Trying) and only sends the final one",
    "bad_sipfrag": "sends sipfrag bodies without the SIP-Version ('200 OK')",
    "no_event": "omits the Event header from NOTIFYs",
    "no_substate": "omits Subscription-State from NOTIFYs",
    "wrong_ctype": "labels NOTIFY bodies text/plain instead of message/sipfrag",
    "final_active": "leaves Subscription-State active on the final NOTIFY",
    "no_noresource": "terminates the subscription with reason=timeout instead of noresource",
    "wrong_event_id": "puts a wrong id in Event: refer;id= for a second REFER in the dialog",
    "no_event_id": "omits the id parameter for a second REFER in the dialog",
    "drop_referred_by": "does not copy Referred-By into the INVITE to the target",
    "drop_replaces": "does not copy the Replaces from Refer-To into the INVITE to the target",
    "bye_after_decline": "hangs up the original call although the transfer failed",
    "bye_before_result": "hangs up the original call before the transfer result is known",
    "ignore_refer_sub": "ignores Refer-Sub: false (no Refer-Sub in the 202, NOTIFYs sent anyway)",
    "accept_no_refer_to": "accepts a REFER without Refer-To (should be 400)",
    "accept_two_refer_to": "accepts a REFER with two Refer-To values (should be 400)",
    "accept_unknown_dialog": "accepts a REFER for a dialog it does not have (should be 481)",
    "accept_bad_replaces": "accepts an INVITE with a Replaces that matches no dialog (should be 481)",
    "keep_replaced": "does not end the replaced dialog after accepting an INVITE with Replaces",
    "ignore_early_only": "accepts an INVITE with Replaces;early-only for a confirmed dialog (should be 486)",
    "unsupported_scheme_ok": "reports success for a Refer-To URI scheme it cannot use",
    "copy_unsafe_headers": "copies every header embedded in the Refer-To URI into the INVITE, unsafe ones too",
}


class FaultyPhone:
    def __init__(self, agent: Agent, faults: set[str], answer: str) -> None:
        self.agent = agent
        self.faults = faults
        self.answer_mode = answer
        agent.auto_answer = None
        if "accept_unknown_dialog" in faults:
            agent.auto_unknown_dialog = False

    def has(self, fault: str) -> bool:
        return fault in self.faults

    async def serve(self) -> None:
        while True:
            try:
                item = await self.agent.expect("*", timeout=3600)
            except ExpectationFailed:
                continue
            asyncio.get_running_loop().create_task(self._guarded(item))

    async def _guarded(self, item: Inbound) -> None:
        try:
            await self.handle(item)
        except Exception as exc:   # a broken flow must not stop the phone
            print(f"error handling {item.summary()}: {type(exc).__name__}: {exc}", flush=True)

    async def handle(self, item: Inbound) -> None:
        method = item.message.method
        if method == "INVITE" and item.incoming.call is None:
            await self.on_invite(item)
        elif method == "REFER":
            await self.on_refer(item)
        elif method not in ("ACK", "BYE", "NOTIFY", "OPTIONS", "CANCEL", "INVITE", "UPDATE") \
                and item.incoming.final is None:
            await self.agent.respond(item, 501)

    # -- incoming calls --------------------------------------------------------------------
    async def on_invite(self, item: Inbound) -> None:
        request = item.message
        try:
            replaces = request.replaces
        except SipParseError:
            await self.agent.respond(item, 400)
            return
        if replaces is not None:
            await self.on_replaces(item, replaces)
            return
        if self.answer_mode == "busy":
            await self.agent.respond(item, 486)
        elif self.answer_mode == "decline":
            await self.agent.respond(item, 603)
        elif self.answer_mode == "noanswer":
            await self.agent.respond(item, 180)
        else:
            await self.agent.respond(item, 180)
            await self.agent.answer(item)

    def find_dialog(self, replaces: Replaces) -> Call | None:
        # RFC 3891 §3: to-tag is our local tag, from-tag the remote one
        for call in self.agent.calls:
            d = call.dialog
            if d.call_id == replaces.call_id and d.local_tag == replaces.to_tag and d.remote_tag == replaces.from_tag:
                return call if call.is_up else None
        return None

    async def on_replaces(self, item: Inbound, replaces: Replaces) -> None:
        old = self.find_dialog(replaces)
        if old is None and not self.has("accept_bad_replaces"):
            await self.agent.respond(item, 481)
            return
        if old is not None and replaces.early_only and not self.has("ignore_early_only"):
            await self.agent.respond(item, 486)
            return
        await self.agent.answer(item)
        if old is not None and not self.has("keep_replaced"):
            await self.agent.bye(old)

    # -- transfers ---------------------------------------------------------------------------
    async def on_refer(self, item: Inbound) -> None:
        request = item.message
        call = item.incoming.call
        if call is None:
            await self.agent.respond(item, 202 if self.has("accept_unknown_dialog") else 481)
            return
        refer_tos = request.values("Refer-To")
        if len(refer_tos) == 0 and not self.has("accept_no_refer_to"):
            await self.agent.respond(item, 400, "Missing Refer-To")
            return
        if len(refer_tos) > 1 and not self.has("accept_two_refer_to"):
            await self.agent.respond(item, 400, "Multiple Refer-To")
            return
        try:
            target = request.refer_to.uri if refer_tos else None
        except SipParseError:
            await self.agent.respond(item, 400, "Bad Refer-To")
            return
        no_sub = request.refer_sub is False and not self.has("ignore_refer_sub")
        status = 200 if self.has("refer_200") else 202
        headers = {"Refer-Sub": "false"} if no_sub else None
        notifier = await self.agent.accept_refer(item, status, headers=headers)
        if notifier is not None and self.has("ignore_refer_sub"):
            notifier.enabled = True
        if notifier is not None and self.has("wrong_event_id") and not notifier.first_in_dialog:
            notifier.cseq += 1
        if notifier is not None and self.has("no_event_id"):
            notifier.first_in_dialog = True
        send = notifier is not None and notifier.enabled and not self.has("no_notify")
        if send and not self.has("no_initial_notify"):
            await self.notify(call, notifier, 100, final=False)
        if self.has("bye_before_result"):
            await self.agent.bye(call)
        outcome = await self.call_target(target, request)
        if send:
            await self.notify(call, notifier, outcome, final=True)
        if self.has("bye_after_decline") and outcome >= 300 and call.is_up:
            await self.agent.bye(call)

    async def call_target(self, target, refer) -> int:
        if not isinstance(target, SipUri):
            return 200 if self.has("unsupported_scheme_ok") else 416
        headers: dict[str, str] = {}
        referred_by = refer.header("Referred-By")
        if referred_by and not self.has("drop_referred_by"):
            headers["Referred-By"] = referred_by
        for name, value in target.headers:
            if name.lower() == "replaces":
                if not self.has("drop_replaces"):
                    headers["Replaces"] = value
            elif self.has("copy_unsafe_headers") or name.lower() in ("require", "accept-contact"):
                headers[name] = value
        uri = str(target.replace(headers=()))
        pending = await self.agent.invite(uri, headers=headers)
        try:
            final = await pending.final(40)
        except ExpectationFailed:
            return 408
        return final.status

    async def notify(self, call: Call, notifier, status: int, final: bool) -> None:
        headers, body = notifier.notify_headers(status, final=final)
        hdrs: dict[str, str | None] = dict(headers)
        if self.has("no_event"):
            hdrs["Event"] = None
        if self.has("no_substate"):
            hdrs["Subscription-State"] = None
        if final and self.has("final_active"):
            hdrs["Subscription-State"] = "active;expires=60"
        if final and self.has("no_noresource"):
            hdrs["Subscription-State"] = "terminated;reason=timeout"
        content_type = hdrs.pop("Content-Type")
        if self.has("wrong_ctype"):
            content_type = "text/plain"
        if self.has("bad_sipfrag"):
            body = body.split(b" ", 1)[1]      # '200 OK' without 'SIP/2.0'
        await self.agent.request("NOTIFY", call=call, headers=hdrs, body=body, content_type=content_type)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--transport", default="udp")
    parser.add_argument("--faults", default="", help=f"comma-separated: {', '.join(FAULTS)}")
    parser.add_argument("--answer", default="auto", choices=("auto", "busy", "decline", "noanswer"))
    args = parser.parse_args()
    faults = {f for f in args.faults.split(",") if f}
    unknown = faults - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    agent = await Agent.start("dut", args.host, args.port, args.transport)
    phone = FaultyPhone(agent, faults, args.answer)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {agent.host} {agent.port} faults={','.join(sorted(faults)) or 'none'}", flush=True)
    server = loop.create_task(phone.serve())
    await stop.wait()
    server.cancel()
    await agent.close()


if __name__ == "__main__":
    asyncio.run(main())
