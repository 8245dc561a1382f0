"""The scenario model: a REFER flow as parties and steps, with its requirement metadata."""

from __future__ import annotations

import dataclasses
import pathlib

ROLES = ("transferor", "transferee", "target")
DUT_ROLES = ("transferee", "transferor", "target", "pbx", "proxy")
LEVELS = ("MUST", "SHOULD", "MAY")
TOPOLOGIES = ("direct", "nat")
PHASES = ("preamble", "body", "postamble")


@dataclasses.dataclass
class Requirement:
    rfc: str                 # "RFC 3515"
    section: str             # "2.4.2"
    level: str               # MUST | SHOULD | MAY
    text: str = ""

    @property
    def rfc_marker(self) -> str:
        """pytest marker name: 'RFC 3515' -> 'rfc3515'."""
        return self.rfc.lower().replace(" ", "")

    def __str__(self) -> str:
        return f"{self.rfc} §{self.section} {self.level}"


@dataclasses.dataclass
class Party:
    name: str                # the role name used in steps
    kind: str                # 'agent' | 'dut'
    options: dict = dataclasses.field(default_factory=dict)   # agent switches (auto_answer, ...)


@dataclasses.dataclass
class Step:
    line: int
    index: str = ""                       # "3", or "4.2" inside an any_order group
    requirement: str | None = None        # per-step requirement tag
    note: str = ""
    phase: str = "body"                   # preamble | body | postamble

    def describe(self) -> str:
        raise NotImplementedError


@dataclasses.dataclass
class CallStep(Step):
    name: str = ""
    caller: str = ""
    callee: str = ""
    headers: dict = dataclasses.field(default_factory=dict)
    expect: str = "2xx"
    timeout: float = 10.0
    sdp: bool = True
    wait_answer: bool = True      # false: send the INVITE and go on (saved as `name`)

    def describe(self) -> str:
        return f"call {self.name}: {self.caller} calls {self.callee}"


@dataclasses.dataclass
class SendStep(Step):
    method: str = ""
    sender: str = ""
    call: str | None = None       # in this dialog
    to: str | None = None         # or out of dialog to this party
    uri: str | None = None        # explicit Request-URI (out of dialog)
    headers: dict = dataclasses.field(default_factory=dict)
    body: str | None = None
    content_type: str | None = None
    save: str | None = None
    raw: str | None = None        # crafted bytes instead of a built request

    def describe(self) -> str:
        where = f"in {self.call}" if self.call else f"to {self.to}"
        return f"{self.sender} sends {self.method or 'raw bytes'} {where}"


@dataclasses.dataclass
class ExpectStep(Step):
    what: str = ""                # method, or status spec ('202', '2xx', '>=300')
    at: str = ""
    call: str | None = None
    response_to: str | None = None    # saved request whose response this is
    headers: dict = dataclasses.field(default_factory=dict)
    sipfrag: str | None = None
    state: str | None = None
    timeout: float = 5.0
    optional: bool = False
    save: str | None = None
    reply: int | None = None
    reply_headers: dict = dataclasses.field(default_factory=dict)
    reply_body: str | None = None
    reply_content_type: str | None = None
    answer: bool = False          # for INVITE: answer with SDP and create the call `save`
    if_absent: str = "fail"       # in the body, when nothing of this kind came: fail | inconclusive

    def describe(self) -> str:
        extra = []
        if self.headers:
            extra.append(", ".join(self.headers))
        if self.sipfrag is not None:
            extra.append(f"sipfrag {self.sipfrag}")
        if self.state:
            extra.append(f"Subscription-State {self.state}")
        tail = f" ({'; '.join(extra)})" if extra else ""
        return f"{self.at} expects {self.what}{tail}"


@dataclasses.dataclass
class ExpectNoneStep(Step):
    what: str = ""
    at: str = ""
    call: str | None = None
    within: float = 2.0
    headers: dict = dataclasses.field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.at} expects no {self.what} for {self.within:g} s"


@dataclasses.dataclass
class ReplyStep(Step):
    status: int = 200
    at: str = ""
    to: str = ""                  # saved name of the received request
    headers: dict = dataclasses.field(default_factory=dict)
    body: str | None = None
    content_type: str | None = None
    save: str | None = None       # a 2xx to an INVITE: the name of the call it makes

    def describe(self) -> str:
        return f"{self.at} answers {self.to} with {self.status}"


@dataclasses.dataclass
class AnyOrderStep(Step):
    steps: list[ExpectStep] = dataclasses.field(default_factory=list)

    def describe(self) -> str:
        return "in any order: " + "; ".join(s.describe() for s in self.steps)


@dataclasses.dataclass
class DutStep(Step):
    action: str = ""              # dial | answer | reject | hangup | transfer | attended_transfer | event
    args: dict = dataclasses.field(default_factory=dict)
    timeout: float = 10.0
    save: str | None = None

    def describe(self) -> str:
        return f"DUT {self.action} {self.args or ''}".strip()


@dataclasses.dataclass
class WaitStep(Step):
    seconds: float = 0.0

    def describe(self) -> str:
        return f"wait {self.seconds:g} s"


@dataclasses.dataclass
class NotifyStep(Step):
    status: int = 200
    sender: str = ""
    refer: str = ""               # saved name of the REFER this NOTIFY reports on
    final: bool | None = None     # terminate the subscription (None: status >= 200)
    expect: str | None = None     # the status the DUT must answer the NOTIFY with
    timeout: float = 5.0
    headers: dict = dataclasses.field(default_factory=dict)
    save: str | None = None

    def describe(self) -> str:
        return f"{self.sender} sends NOTIFY (sipfrag {self.status}) for {self.refer}"


@dataclasses.dataclass
class CollectStep(Step):
    what: str = "NOTIFY"
    at: str = ""
    call: str | None = None
    until: str = "final"          # final | quiet
    timeout: float = 5.0          # each message within this of the previous one
    first_timeout: float | None = None
    max: int = 8
    save: str = ""
    if_absent: str = "fail"       # in the body, when none came at all: fail | inconclusive

    def describe(self) -> str:
        return f"{self.at} collects every {self.what} up to the {'final one' if self.until == 'final' else 'last'}"


@dataclasses.dataclass
class SetStep(Step):
    party: str = ""
    options: dict = dataclasses.field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.party}: " + ", ".join(f"{k} = {v}" for k, v in self.options.items())


@dataclasses.dataclass
class LibraryCall(Step):
    """A named check or action of the step library (referee/scenario/library.py)."""
    kind: str = "check"           # check | do
    name: str = ""
    args: dict = dataclasses.field(default_factory=dict)

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.args.items())
        return f"{self.kind} {self.name}" + (f" ({shown})" if shown else "")


@dataclasses.dataclass
class Scenario:
    id: str
    title: str
    file: pathlib.Path
    requirement: Requirement
    dut_role: str
    parties: dict[str, Party]
    steps: list[Step]
    needs: list[str] = dataclasses.field(default_factory=list)
    dut_kinds: list[str] = dataclasses.field(default_factory=lambda: ["phone"])
    topology: str = "direct"
    markers: list[str] = dataclasses.field(default_factory=list)
    description: str = ""
    nat_alg: tuple[str, ...] = ("off", "on")    # topology nat: the SIP ALG modes it runs in
    nat_proxy: bool = False                    # topology nat: Kamailio in front of the DUT

    @property
    def dut_party(self) -> str | None:
        return next((p.name for p in self.parties.values() if p.kind == "dut"), None)

    def all_markers(self) -> list[str]:
        marks = [self.requirement.rfc_marker, self.dut_role, self.requirement.level.lower()]
        if self.topology == "nat":
            marks.append("nat")
        return list(dict.fromkeys(marks + self.markers))
