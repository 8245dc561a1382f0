"""Evidence: the message (or the absence of one) a verdict rests on.

A FAIL must show what the DUT sent that breaks the requirement, or what it was obliged to send
and did not. An `Evidence` names the agent that received (or waited for) the message, the
message by its start line and CSeq, the part judged (a header, the sipfrag body, the status),
what was expected and what was seen. `frame` is its number in the test's capture.pcap, filled
in once the capture is written.
"""

from __future__ import annotations

import dataclasses

from referee.sip import Message, SipParseError


@dataclasses.dataclass
class Evidence:
    party: str                     # the agent that received the message, or waited for it
    message: str                   # start line and CSeq; '' when nothing came
    source: str = ""               # host:port the message came from
    part: str = ""                 # what was judged: a header name, 'sipfrag', 'status', 'message'
    expected: str = ""
    seen: str = ""
    time: float = 0.0              # wall clock of arrival (comparable with pcap timestamps)
    raw: bytes = b""
    frame: int | None = None       # 1-based frame number in the test's capture (capture.pcap[ng])

    @property
    def absent(self) -> bool:
        """Evidence of a message that did not come."""
        return not self.raw

    def describe(self) -> str:
        """One line for a report: '<party> received <message> from <src> (frame 12): <part> ...'."""
        if self.absent:
            return f"{self.party}: expected {self.expected}; {self.seen or 'nothing came'}"
        where = f" from {self.source}" if self.source else ""
        frame = f" (frame {self.frame} of the test's capture)" if self.frame else ""
        judged = f"{self.part}: " if self.part and self.part != "message" else ""
        return f"{self.party} received {self.message}{where}{frame}: {judged}expected {self.expected}, seen {self.seen}"

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["raw"] = self.raw.decode("utf-8", "replace")
        return data


def message_line(msg: Message) -> str:
    """'NOTIFY sip:a@127.0.0.1:5062 SIP/2.0 (CSeq 3 NOTIFY)' — read leniently (evidence of a broken
    message must not break the report)."""
    try:
        return msg.summary()
    except SipParseError:
        return bytes(msg).split(b"\n", 1)[0].strip().decode("utf-8", "replace")


def evidence_of(party: str, msg: Message, source: tuple[str, int] | None, time: float, part: str,
                expected: str, seen: str) -> Evidence:
    src = ""
    if source:
        host, port = source
        src = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return Evidence(party, message_line(msg), src, part, expected, seen, time, bytes(msg))
