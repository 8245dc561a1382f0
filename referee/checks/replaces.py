"""Replaces (RFC 3891): naming a dialog of the DUT the way the DUT itself sees it, for the
Replaces header of an INVITE sent to it as transfer target."""

from __future__ import annotations

import dataclasses

from referee.scenario.library import Param, action
from referee.scenario.verdict import HarnessError


@dataclasses.dataclass(frozen=True)
class DialogId:
    """A dialog as one side sees it; its `fields` are what `{name.field}` gives in a scenario."""
    call_id: str
    local_tag: str
    remote_tag: str

    @property
    def replaces(self) -> str:
        """The Replaces value that side matches (RFC 3891 §3: to-tag = its local tag)."""
        return f"{self.call_id};to-tag={self.local_tag};from-tag={self.remote_tag}"

    @property
    def fields(self) -> dict[str, str]:
        return {"call_id": self.call_id, "local_tag": self.local_tag, "remote_tag": self.remote_tag,
                "replaces": self.replaces}


def early_dialog_of(item) -> DialogId:
    """The DUT's early dialog shown by a saved message: an INVITE the DUT sent that an agent
    answered with a provisional response (the DUT's tag is in From, the agent's is the To tag it
    answered with), or a provisional response with a To tag the DUT sent to an agent's INVITE (the
    DUT's tag is in To, the agent's in From)."""
    from referee.agent.objects import Inbound
    if not isinstance(item, Inbound):
        raise HarnessError("early_dialog needs a message an agent received (an expect step's `save`)")
    msg = item.message
    if msg.is_request:
        if msg.method != "INVITE" or item.incoming is None or not item.incoming.to_tag:
            raise HarnessError(f"early_dialog: {msg.summary()} is not an INVITE an agent answered "
                               f"with a provisional response (reply 180 first)")
        return DialogId(msg.call_id or "", msg.from_.tag or "", item.incoming.to_tag)
    if not (100 < msg.status < 200 and msg.to.tag):
        raise HarnessError(f"early_dialog: {msg.summary()} is not a provisional response with a To tag")
    return DialogId(msg.call_id or "", msg.to.tag, msg.from_.tag or "")


@action("early_dialog", """
    Name an early dialog of the DUT as the DUT sees it, for a Replaces header.

    `of` is an INVITE the DUT sent that an agent answered with a provisional response (a dialog
    the DUT initiated), or a provisional response with a To tag that the DUT sent to an agent's
    INVITE (a call ringing at the DUT). Later steps use {NAME.replaces} (call-id;to-tag=the DUT's
    tag;from-tag=the other side's tag), {NAME.call_id}, {NAME.local_tag} and {NAME.remote_tag}.
    """, of=Param("saved", "the received INVITE (answered 18x) or 18x response showing the early dialog",
                  required=True),
    save=Param("new_saved", "the name the dialog is kept under", required=True))
async def early_dialog(ctx, of: str, save: str) -> None:
    dialog = early_dialog_of(ctx.saved(of))
    ctx.flow.saved[save] = dialog
    ctx.detail = f"Replaces {dialog.replaces}"
