"""REFER subscriptions (RFC 3515, RFC 4488 Refer-Sub, RFC 6665 id rules, RFC 7647).

Two sides:
- `ReferSubscriber`: we sent a REFER; it tracks the implicit subscription the 202 creates and
  checks every NOTIFY that arrives for it (Event refer;id, Subscription-State, sipfrag).
- `ReferNotifier`: we accepted a REFER; it builds the NOTIFYs (headers + sipfrag body).
"""

from __future__ import annotations

import dataclasses
import enum
import functools

from referee.sip import Request, Response, SipParseError
from referee.sip.sipfrag import Sipfrag


def sipfrag_status(body: bytes) -> int | None:
    """The status code of a message/sipfrag body (None: not a status line), as Sipfrag.parse
    reads it; SipParseError when malformed. NOTIFYs carry the same few bodies over and over
    ("SIP/2.0 100 Trying"): short ones are parsed once."""
    body = bytes(body)
    if len(body) > 200:
        return Sipfrag.parse(body).status
    status, reason, offset = _short_sipfrag_status(body)
    if reason is not None:
        raise SipParseError(reason, offset)
    return status


@functools.lru_cache(maxsize=256)
def _short_sipfrag_status(body: bytes) -> tuple[int | None, str | None, int]:
    try:
        return Sipfrag.parse(body).status, None, 0
    except SipParseError as exc:
        return None, exc.reason, exc.offset


class SubState(enum.Enum):
    PENDING = "pending"          # REFER sent, no final response yet
    ACTIVE = "active"            # 2xx received (implicit subscription exists)
    TERMINATED = "terminated"    # final NOTIFY seen, or rejected, or no subscription


@dataclasses.dataclass
class NotifyCheck:
    """What a NOTIFY said and every way it deviated from the rules."""
    status: int | None
    state: str | None
    reason: str | None
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


class ReferSubscriber:
    """Tracks the subscription created by one REFER we sent."""

    def __init__(self, refer: Request, first_in_dialog: bool = True) -> None:
        self.refer = refer
        self.cseq = refer.cseq.seq
        self.first_in_dialog = first_in_dialog
        self.refer_sub = refer.refer_sub is not False
        self.state = SubState.PENDING
        self.statuses: list[int] = []   # sipfrag status codes in NOTIFY order
        self.notifies: list[Request] = []

    def on_response(self, response: Response) -> None:
        if response.status < 200:
            return
        if response.status >= 300:
            self.state = SubState.TERMINATED
            return
        # RFC 4488: a 2xx with Refer-Sub: false means no subscription was created.
        accepted_without = self.refer_sub is False or response.refer_sub is False
        self.state = SubState.TERMINATED if accepted_without else SubState.ACTIVE

    def event_id_ok(self, notify: Request) -> bool:
        """RFC 3515 §2.4.6: NOTIFYs for a second REFER in a dialog carry id=<REFER CSeq>;
        an id, when present, must equal the CSeq."""
        event = notify.event
        if event is None:
            return False
        if event.id is None:
            return self.first_in_dialog
        return event.id == str(self.cseq)

    def matches(self, notify: Request) -> bool:
        event = notify.event
        if event is None or event.package != "refer":
            return False
        return event.id is None or event.id == str(self.cseq)

    def on_notify(self, notify: Request) -> NotifyCheck:
        problems: list[str] = []
        status = state = reason = None
        try:
            event = notify.event
        except SipParseError as exc:
            event, _ = None, problems.append(f"bad Event header: {exc.reason}")
        if event is None:
            problems.append("NOTIFY without Event header (RFC 6665 §8.2.1 MUST)")
        elif event.package != "refer":
            problems.append(f"Event package {event.package!r}, expected 'refer' (RFC 3515 §2.4.4)")
        elif not self.event_id_ok(notify):
            problems.append(f"Event id {event.id!r}, expected id={self.cseq} (RFC 3515 §2.4.6)")
        try:
            sub_state = notify.subscription_state
        except SipParseError as exc:
            sub_state, _ = None, problems.append(f"bad Subscription-State: {exc.reason}")
        if sub_state is None:
            problems.append("NOTIFY without Subscription-State (RFC 6665 §8.2.3 MUST)")
        else:
            state, reason = sub_state.state, sub_state.reason
        ctype = notify.content_type
        if ctype is None or ctype.mime != "message/sipfrag":
            problems.append(f"Content-Type {notify.header('Content-Type')!r}, expected message/sipfrag "
                            "(RFC 3515 §2.4.5)")
        try:
            status = sipfrag_status(notify.body)
            if status is None:
                problems.append("sipfrag body has no status line (RFC 3515 §2.4.5)")
        except SipParseError as exc:
            problems.append(f"bad sipfrag body: {exc.reason}")
        if self.state is SubState.TERMINATED and self.notifies:
            problems.append("NOTIFY after the subscription was terminated")
        if self.refer_sub is False:
            problems.append("NOTIFY although the REFER said Refer-Sub: false (RFC 4488 §4)")
        self.notifies.append(notify)
        if status is not None:
            self.statuses.append(status)
        if state == "terminated":
            self.state = SubState.TERMINATED
        return NotifyCheck(status, state, reason, problems)

    @property
    def final_status(self) -> int | None:
        finals = [s for s in self.statuses if s >= 200]
        return finals[-1] if finals else None


class ReferNotifier:
    """Builds the NOTIFYs for a REFER we accepted (we are the transferee)."""

    def __init__(self, refer: Request, first_in_dialog: bool = True, expires: int = 60) -> None:
        self.refer = refer
        self.cseq = refer.cseq.seq
        self.first_in_dialog = first_in_dialog
        self.enabled = refer.refer_sub is not False
        self.expires = expires
        self.terminated = not self.enabled

    def notify_headers(self, status: int, reason: str | None = None,
                       final: bool | None = None) -> tuple[list[tuple[str, str]], bytes]:
        """Event, Subscription-State and Content-Type headers plus the sipfrag body."""
        final = status >= 200 if final is None else final
        event = "refer" if self.first_in_dialog else f"refer;id={self.cseq}"
        state = "terminated;reason=noresource" if final else f"active;expires={self.expires}"
        if final:
            self.terminated = True
        headers = [("Event", event), ("Subscription-State", state),
                   ("Content-Type", "message/sipfrag;version=2.0")]
        return headers, Sipfrag.build(status, reason)
