"""A phone built on referee's own Agent, correct by default, with switchable faults.

It is the proof that each conformance test can fail: run the suite against it with one fault
switched on and exactly the test purposes that fault violates must fail; with no fault, all
must pass. Launched by a profile's `launch` command:

    python tests/faulty/phone.py --port 5080 [--faults refer_200,no_notify] [--answer auto]

Prints READY when listening; stops on SIGTERM.

As a transferee (no fault) it behaves like a careful phone: 202 to a valid REFER, an immediate
NOTIFY `100 Trying`, the INVITE to the Refer-To URI (with the REFER's Referred-By and the URI's
Replaces, and none of the URI's unsafe headers), a NOTIFY for each provisional response of the
target (180/183), a final NOTIFY with the target's final status and
`Subscription-State: terminated;reason=noresource`; it never ends the original call itself.
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
from referee.sip import NameAddr, Replaces, SipParseError, SipUri  # noqa: E402

# fault name -> what the phone then does wrong (the requirement it breaks is in the scenario)
FAULTS = {
    "media_to_transferor": "keeps sending RTP to the transferor after the original call was hung up",
    # answering the REFER
    "refer_200": "answers an accepted REFER with 200 OK instead of 202 Accepted",
    "accept_no_refer_to": "accepts a REFER without Refer-To (should be 400)",
    "accept_two_refer_to": "accepts a REFER with two Refer-To values (should be 400)",
    "accept_unknown_dialog": "accepts a REFER for a dialog it does not have (should be 481)",
    "stray_subscribe_489": "answers a SUBSCRIBE for a refer subscription that does not exist with 489 (should be 403)",
    # the implicit subscription and its NOTIFYs
    "no_notify": "sends no NOTIFY at all after accepting a REFER",
    "no_initial_notify": "skips the immediate NOTIFY (100 Trying): notifies only provisional and final responses",
    "initial_not_trying": "its immediate NOTIFY reports 180 Ringing instead of 100 Trying",
    "bad_sipfrag": "sends sipfrag bodies without the SIP-Version ('200 OK')",
    "no_event": "omits the Event header from NOTIFYs",
    "no_substate": "omits Subscription-State from NOTIFYs",
    "no_expires": "omits the expires parameter from Subscription-State: active",
    "wrong_ctype": "labels NOTIFY bodies text/plain instead of message/sipfrag",
    "final_active": "leaves Subscription-State active on the final NOTIFY",
    "no_noresource": "terminates the subscription with reason=timeout instead of noresource",
    "notify_wrong_dialog": "sends the NOTIFYs with a From tag that is not its tag of the REFER's dialog",
    "wrong_event_id": "puts a wrong id in Event: refer;id= for a second REFER in the dialog",
    "no_event_id": "omits the id parameter for a second REFER in the dialog",
    # what the NOTIFYs report
    "false_failure": "reports 503 in the final NOTIFY although the target answered 200",
    "report_success_on_failure": "reports 200 in the final NOTIFY whatever the target answered",
    "no_final_on_timeout": "sends no final NOTIFY when the target never answers",
    "unsupported_scheme_ok": "reports success for a Refer-To URI scheme it cannot use",
    # Refer-Sub (RFC 4488)
    "ignore_refer_sub": "ignores Refer-Sub: false (no Refer-Sub in the 202, NOTIFYs sent anyway)",
    "notify_despite_nosub": "answers Refer-Sub: false in its 202 but sends NOTIFYs all the same",
    "refer_sub_true_as_false": "takes any Refer-Sub header, even 'true', as a request for no subscription",
    # the triggered INVITE
    "drop_target_user": "calls the Refer-To host without the URI's user part",
    "drop_referred_by": "does not copy Referred-By into the INVITE to the target",
    "drop_replaces": "does not copy the Replaces from Refer-To into the INVITE to the target",
    "copy_unsafe_headers": "copies every header embedded in the Refer-To URI into the INVITE, unsafe ones too",
    # the original call
    "bye_after_decline": "hangs up the original call although the transfer failed",
    "bye_before_result": "hangs up the original call before the transfer result is known",
    # as the target of an INVITE with Replaces
    "accept_bad_replaces": "accepts an INVITE with a Replaces that matches no dialog (should be 481)",
    "keep_replaced": "does not end the replaced dialog after accepting an INVITE with Replaces",
    "ignore_early_only": "accepts an INVITE with Replaces;early-only for a confirmed dialog (should be 486)",
}

# headers of a Refer-To URI that are never copied into the triggered request (RFC 3261 §19.1.5)
UNSAFE_URI_HEADERS = {"from", "call-id", "cseq", "via", "record-route", "to", "contact", "max-forwards",
                      "route", "accept", "accept-encoding", "accept-language", "allow", "organization",
                      "supported", "user-agent", "content-length", "content-type"}
TARGET_TIMEOUT = 40.0        # bound on the wait for the target's final response


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
        elif method == "SUBSCRIBE":
            await self.on_subscribe(item)
        elif method not in ("ACK", "BYE", "NOTIFY", "OPTIONS", "CANCEL", "INVITE", "UPDATE") \
                and item.incoming.final is None:
            await self.agent.respond(item, 501)

    # -- incoming calls --------------------------------------------------------------------
    def stream_media(self, call: Call) -> None:
        """Send RTP (one packet per 20 ms) to the peer's media address while the call is up (at most
        60 s); with media_to_transferor, 3 s more after it ended."""
        async def stream() -> None:
            loop = asyncio.get_running_loop()
            stop_at = loop.time() + 60
            ended_at = None
            while loop.time() < stop_at:
                if not call.is_up:
                    ended_at = ended_at or loop.time()
                    if not self.has("media_to_transferor") or loop.time() - ended_at > 3:
                        return
                if not self.agent.send_rtp(call, packets=1):
                    return
                await asyncio.sleep(0.02)
        asyncio.get_running_loop().create_task(stream())

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
            call = await self.agent.answer(item)
            if call is not None:
                self.stream_media(call)

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
        new_call = await self.agent.answer(item)
        if new_call is not None:
            self.stream_media(new_call)
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
            target = NameAddr.parse(refer_tos[0]).uri if refer_tos else None
            refer_sub = request.refer_sub
        except SipParseError:
            await self.agent.respond(item, 400, "Bad Refer-To")
            return
        if self.has("refer_sub_true_as_false"):
            no_sub = refer_sub is not None
        else:
            no_sub = refer_sub is False and not self.has("ignore_refer_sub")
        status = 200 if self.has("refer_200") else 202
        headers = {"Refer-Sub": "false"} if no_sub else None
        notifier = await self.agent.accept_refer(item, status, headers=headers)
        if notifier is None:
            return
        notifier.enabled = not no_sub or self.has("notify_despite_nosub")
        notifier.terminated = not notifier.enabled
        notifier.last_status = 100
        if self.has("wrong_event_id") and not notifier.first_in_dialog:
            notifier.cseq += 1
        if self.has("no_event_id"):
            notifier.first_in_dialog = True
        if not self.has("no_initial_notify"):
            await self.notify(call, notifier, 180 if self.has("initial_not_trying") else 100, final=False)
        if self.has("bye_before_result"):
            await self.agent.bye(call)

        async def progress(status: int) -> None:
            await self.notify(call, notifier, status, final=False)

        outcome = await self.call_target(target, request, progress)
        if outcome is None:                     # the target never answered
            outcome = 408
            if self.has("no_final_on_timeout"):
                return
        if self.has("false_failure") and 200 <= outcome < 300:
            outcome = 503
        if self.has("report_success_on_failure"):
            outcome = 200
        await self.notify(call, notifier, outcome, final=True)
        if self.has("bye_after_decline") and outcome >= 300 and call.is_up:
            await self.agent.bye(call)

    async def call_target(self, target, refer, progress) -> int | None:
        """INVITE the Refer-To URI; the final status (None: no final response at all)."""
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
            elif self.has("copy_unsafe_headers") or name.lower() not in UNSAFE_URI_HEADERS:
                headers[name] = value
        changes = {"headers": (), "params": {k: v for k, v in target.params.items() if k.lower() != "method"}}
        if self.has("drop_target_user"):
            changes["user"] = None
        uri = str(target.replace(**changes))
        pending = await self.agent.invite(uri, headers=headers)
        reported = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TARGET_TIMEOUT
        while not pending.final_future.done() and loop.time() < deadline:
            await asyncio.wait([pending.final_future], timeout=0.05)
            for response in pending.responses[reported:]:
                reported += 1
                if 100 < response.status < 200:
                    await progress(response.status)
        if not pending.final_future.done() or pending.final_future.exception() is not None:
            return None
        if pending.call is not None:
            self.stream_media(pending.call)
        return pending.final_future.result().status

    async def notify(self, call: Call, notifier, status: int, final: bool) -> None:
        if not notifier.enabled or self.has("no_notify") or notifier.terminated:
            return
        headers, body = notifier.notify_headers(status, final=final)
        notifier.last_status = status
        hdrs: dict[str, str | None] = dict(headers)
        if self.has("no_expires") and not final:
            hdrs["Subscription-State"] = "active"
        if final and self.has("final_active"):
            hdrs["Subscription-State"] = f"active;expires={notifier.expires}"
        if final and self.has("no_noresource"):
            hdrs["Subscription-State"] = "terminated;reason=timeout"
        if self.has("no_substate"):
            hdrs["Subscription-State"] = None
        if self.has("no_event"):
            hdrs["Event"] = None
        if self.has("notify_wrong_dialog"):
            hdrs["From"] = f"{call.dialog.local_uri};tag={call.dialog.local_tag}-other"
        content_type = hdrs.pop("Content-Type")
        if self.has("wrong_ctype"):
            content_type = "text/plain"
        if self.has("bad_sipfrag"):
            body = body.split(b" ", 1)[1]      # '200 OK' without 'SIP/2.0'
        await self.agent.request("NOTIFY", call=call, headers=hdrs, body=body, content_type=content_type)

    async def on_subscribe(self, item: Inbound) -> None:
        """SUBSCRIBE for event refer: refreshes an existing REFER subscription, else 403 (RFC 3515 §2.4.4)."""
        request = item.message
        try:
            event = request.event
            expires = request.expires
        except SipParseError:
            await self.agent.respond(item, 400)
            return
        if event is None or event.package != "refer":
            await self.agent.respond(item, 489)
            return
        call = item.incoming.call
        notifier = None
        for candidate in (call.notifiers if call is not None else []):
            if candidate.enabled and not candidate.terminated and \
                    (event.id is None or event.id == str(candidate.cseq)):
                notifier = candidate
        if notifier is None:
            await self.agent.respond(item, 489 if self.has("stray_subscribe_489") else 403)
            return
        expires = notifier.expires if expires is None else min(expires, notifier.expires)
        await self.agent.respond(item, 200, headers={"Expires": str(expires)})
        headers, body = notifier.notify_headers(notifier.last_status, final=False)
        hdrs: dict[str, str | None] = dict(headers)
        if expires == 0:
            notifier.terminated = True
            hdrs["Subscription-State"] = "terminated;reason=timeout"
        content_type = hdrs.pop("Content-Type")
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
