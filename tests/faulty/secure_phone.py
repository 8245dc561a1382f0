"""A careful phone for the security test purposes, built on referee's own Agent, correct by default,
with switchable faults. With no fault it must pass every phone security test (SEC-REFER-OOD-001,
SEC-REPLACES-001, SEC-FLOOD-001); with one fault exactly the test purposes it violates must fail.

    python tests/faulty/secure_phone.py --port 5080 [--faults replaces_no_auth,flood_crash]

Prints READY when listening; stops on SIGTERM.

As a transferee: a REFER in one of its calls is accepted (202), NOTIFYs 100 Trying at once, the
Refer-To URI is called (with the REFER's Referred-By) and the final NOTIFY reports the final
status; several REFERs in one call run side by side, the NOTIFYs of the second and later ones
with Event id=<their REFER's CSeq>. A REFER outside any call is refused (403): nobody approved
it. As a target: an INVITE with Replaces that matches one of its calls is accepted only when its
Referred-By names the party being replaced (RFC 3891 §3), otherwise refused (403); then the
replaced call is ended with BYE.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import signal
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

from referee.agent import Agent, ExpectationFailed  # noqa: E402
from referee.agent.objects import Call, Inbound  # noqa: E402
from referee.sip import NameAddr, SipParseError, SipUri  # noqa: E402

# fault name -> what the phone then does wrong (the requirement it breaks is in the test purpose)
FAULTS = {
    "ood_refer_dials": "accepts a REFER outside any call from anybody and calls the Refer-To URI at once",
    "replaces_no_auth": "accepts any INVITE with Replaces that matches a call, without checking who sent it",
    "flood_unanswered": "leaves every REFER after the 10th in a call unanswered",
    "flood_wrong_id": "puts the CSeq of the latest REFER of the call in the Event id of every NOTIFY",
    "flood_crash": "exits on the 11th REFER in a call",
}
FLOOD_LIMIT = 10
TARGET_TIMEOUT = 10.0


def same_party(a, b) -> bool:
    return (isinstance(a, SipUri) and isinstance(b, SipUri) and a.user == b.user
            and a.host.lower() == b.host.lower() and (a.port or 5060) == (b.port or 5060))


class SecurePhone:
    def __init__(self, agent: Agent, faults: set[str]) -> None:
        self.agent = agent
        self.faults = faults
        self.refers: dict[str, list[int]] = {}     # Call-ID -> CSeqs of the REFERs received
        agent.auto_answer = None

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

    # -- incoming calls ---------------------------------------------------------------------
    async def on_invite(self, item: Inbound) -> None:
        try:
            replaces = item.message.replaces
        except SipParseError:
            await self.agent.respond(item, 400)
            return
        if replaces is None:
            await self.agent.respond(item, 180)
            await self.agent.answer(item)
            return
        old = next((c for c in self.agent.calls if c.is_up and c.dialog.call_id == replaces.call_id
                    and c.dialog.local_tag == replaces.to_tag and c.dialog.remote_tag == replaces.from_tag), None)
        if old is None:
            await self.agent.respond(item, 481)
            return
        if replaces.early_only:
            await self.agent.respond(item, 486)
            return
        if not self.has("replaces_no_auth") and not self.authorized(item, old):
            await self.agent.respond(item, 403, "Forbidden (replacement not authorized)")
            return
        await self.agent.answer(item)
        await self.agent.bye(old)

    @staticmethod
    def authorized(item: Inbound, old: Call) -> bool:
        """RFC 3891 §3: a Referred-By naming the user being replaced (the matched call's peer)."""
        try:
            referred_by = item.message.referred_by
            peer = NameAddr.parse(old.dialog.remote_uri).uri
        except (SipParseError, AttributeError):
            return False
        return referred_by is not None and same_party(referred_by.uri, peer)

    # -- transfers ------------------------------------------------------------------------------
    async def on_refer(self, item: Inbound) -> None:
        request = item.message
        call = item.incoming.call
        if call is None:
            if self.has("ood_refer_dials"):
                await self.agent.respond(item, 202)
                await self.call_target(request)
            else:
                await self.agent.respond(item, 403, "Forbidden (transfer outside a call not approved)")
            return
        seen = self.refers.setdefault(call.call_id, [])
        seen.append(request.cseq.seq)
        if len(seen) > FLOOD_LIMIT:
            if self.has("flood_crash"):
                print(f"crashing on REFER #{len(seen)} in {call.call_id}", flush=True)
                os._exit(3)
            if self.has("flood_unanswered"):
                return
        refer_tos = request.values("Refer-To")
        if len(refer_tos) != 1:
            await self.agent.respond(item, 400, "Bad Request (one Refer-To)")
            return
        notifier = await self.agent.accept_refer(item, 202)
        if notifier is None:
            return
        await self.notify(call, notifier, 100)
        status = await self.call_target(request)
        await self.notify(call, notifier, status)

    async def call_target(self, refer) -> int:
        try:
            target = NameAddr.parse(refer.values("Refer-To")[0]).uri
        except (SipParseError, IndexError):
            return 400
        if not isinstance(target, SipUri):
            return 416
        headers = {"Referred-By": refer.header("Referred-By")} if refer.has("Referred-By") else {}
        uri = str(target.replace(headers=()))
        pending = await self.agent.invite(uri, headers=headers)
        try:
            return (await pending.final(TARGET_TIMEOUT)).status
        except ExpectationFailed:
            return 408

    async def notify(self, call: Call, notifier, status: int) -> None:
        headers, body = notifier.notify_headers(status)
        hdrs: dict[str, str | None] = dict(headers)
        if self.has("flood_wrong_id"):
            hdrs["Event"] = f"refer;id={self.refers[call.call_id][-1]}"
        content_type = hdrs.pop("Content-Type")
        await self.agent.request("NOTIFY", call=call, headers=hdrs, body=body, content_type=content_type)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--faults", default="", help=f"comma-separated: {', '.join(FAULTS)}")
    args = parser.parse_args()
    faults = {f for f in args.faults.split(",") if f}
    unknown = faults - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")
    agent = await Agent.start("dut", args.host, args.port)
    phone = SecurePhone(agent, faults)
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
