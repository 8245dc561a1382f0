"""Ladder (sequence) diagrams of one test's SIP flow: the data model and its builders.

A `Ladder` has lanes (one per party: agents by role name, the DUT by its address, any other
endpoint by ip:port) and rows in time order: message arrows, notes (DUT driver events) and the
failure marker of the failing step. Build one from a trace dict (`Trace.to_dict()`, as written to
trace.json), from wire messages (a capture or a pcap), or from both: lane names and step
annotations from the trace, arrows from the wire.

    ladder = ladder_from_trace(json.load(open("trace.json")))
    ladder = ladder_from_pcap("capture.pcap")                       # one lane per ip:port
    svg = render_svg(ladder)                                         # see ladder_render.py

On the wire, the same message seen on two interfaces (the lan and wan side of a NAT) is two
arrows; the later one records the earlier one in `translated_from` and which headers changed.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Sequence

from referee import sip

ROLE_ORDER = ("transferor", "transferee", "target")
NAT_WINDOW = 2.0          # seconds: the two sides of one NAT translation are closer than this
PAIR_WINDOW = 2.0         # seconds: a message logged as sent by one agent and received by another
MAX_ROWS = 1500           # rows drawn at most; a note says how many were left out


@dataclasses.dataclass
class Lane:
    key: str                  # unique: role name, or "host:port"
    label: str                # shown in bold at the top
    sublabel: str = ""        # address, "DUT: <name>", interfaces
    kind: str = "host"        # agent | dut | host
    detail: str = ""          # hover text (the DUT's name)


@dataclasses.dataclass
class Arrow:
    time: float
    src: str                  # lane keys
    dst: str
    label: str                # "REFER", "202 Accepted", "unparsable"
    cseq: str = ""            # "CSeq 2 REFER"
    hint: str = ""            # "SDP", "sipfrag 100 Trying"
    text: str = ""            # the whole message as text (hover, side panel)
    src_addr: str = ""        # "host:port" on the wire
    dst_addr: str = ""
    transport: str = ""
    kind: str = "request"     # request | response
    status: int = 0           # response status, 0 for requests
    retransmission: bool = False
    error: str | None = None  # why it is unparsable
    step: str | None = None   # index of the scenario step that matched it
    failed: bool = False      # part of the failing step
    iface: str | None = None
    translated_from: int | None = None   # index (in Ladder.rows) of the same message before the NAT
    rewritten: list[str] = dataclasses.field(default_factory=list)   # headers the NAT changed
    key: tuple = ()           # (label, CSeq, Call-ID, top Via branch): equal on both sides of a NAT
    arrived: float | None = None   # when the receiving agent got it (the trace logs both ends)


@dataclasses.dataclass
class Note:
    time: float
    lane: str                 # lane key the note sits on
    text: str
    detail: str = ""
    kind: str = "event"       # event | failure | gap | cut


@dataclasses.dataclass
class Ladder:
    title: str = ""
    lanes: list[Lane] = dataclasses.field(default_factory=list)
    rows: list[Arrow | Note] = dataclasses.field(default_factory=list)
    t0: float = 0.0

    @property
    def arrows(self) -> list[Arrow]:
        return [r for r in self.rows if isinstance(r, Arrow)]

    def lane(self, key: str) -> Lane:
        return next(lane for lane in self.lanes if lane.key == key)


# --------------------------------------------------------------------------------------
# message text -> label
# --------------------------------------------------------------------------------------

def endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _arrow_for(raw: bytes, time: float, error: str | None = None) -> Arrow:
    """An Arrow with label, CSeq, body hint and NAT key from the raw bytes (lanes not set)."""
    text = raw.decode("utf-8", "replace")
    try:
        msg = sip.parse(raw)
    except sip.SipParseError as exc:
        first = text.split("\n", 1)[0].strip()[:60]
        return Arrow(time, "", "", "unparsable", hint=first, text=text, error=error or str(exc))
    if isinstance(msg, sip.Request):
        label, kind, status = msg.method, "request", 0
    else:
        label, kind, status = f"{msg.status} {msg.reason}", "response", msg.status
    cseq = _safe_view(lambda: f"CSeq {msg.cseq.seq} {msg.cseq.method}") or ""
    branch = _safe_view(lambda: msg.via[0].branch if msg.via else "") or ""
    key = (label, cseq, msg.call_id or "", branch)
    return Arrow(time, "", "", label, cseq=cseq, hint=_body_hint(msg), text=text, kind=kind,
                 status=status, error=error, key=key)


def _safe_view(get):
    try:
        return get()
    except (sip.SipParseError, AttributeError, IndexError, ValueError):
        return None


def _body_hint(msg: sip.Request | sip.Response) -> str:
    if not msg.body:
        return ""
    ctype = (msg.header("Content-Type") or "").split(";")[0].strip().lower()
    if ctype == "application/sdp":
        return "SDP"
    if ctype == "message/sipfrag":
        line = msg.body.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        return "sipfrag " + line.removeprefix("SIP/2.0 ")
    return ctype or f"{len(msg.body)} byte body"


# --------------------------------------------------------------------------------------
# lanes
# --------------------------------------------------------------------------------------

class LaneNamer:
    """Maps wire endpoints to lanes: agents by role name, the DUT by its address, others by ip:port."""

    def __init__(self, agents: dict[str, str] | None = None, dut: str | None = None,
                 dut_name: str = "", dut_role: str | None = None) -> None:
        self.agents = dict(agents or {})          # "host:port" -> role name
        self.dut = dut
        self.dut_name = dut_name
        self.dut_role = dut_role
        self.lanes: dict[str, Lane] = {}
        self.ifaces: dict[str, set[str]] = {}

    def lane_for(self, addr: str, iface: str | None = None) -> str:
        if addr in self.agents:
            key = self.agents[addr]
            lane = Lane(key, key, addr, "agent")
        elif addr == self.dut:
            key = addr
            lane = Lane(key, addr, f"DUT ({self.dut_role})" if self.dut_role else "DUT", "dut", self.dut_name)
        else:
            key = addr
            lane = Lane(key, addr, "", "host")
        self.lanes.setdefault(key, lane)
        if iface:
            self.ifaces.setdefault(key, set()).add(iface)
        return key

    def ordered(self) -> list[Lane]:
        """Lanes in first-seen order, except that agents and the DUT follow the transfer roles
        (transferor | transferee | target) when those are the parties."""
        lanes = list(self.lanes.values())
        for lane in lanes:
            if lane.key in self.ifaces and lane.kind == "host":
                lane.sublabel = "on " + ", ".join(sorted(self.ifaces[lane.key]))

        def rank(item: tuple[int, Lane]) -> tuple[int, int]:
            pos, lane = item
            role = lane.key if lane.kind == "agent" else self.dut_role if lane.kind == "dut" else None
            if role in ROLE_ORDER:
                return (ROLE_ORDER.index(role), pos)
            return (len(ROLE_ORDER), pos)
        return [lane for _, lane in sorted(enumerate(lanes), key=rank)]


def namer_from_trace(trace: dict, dut_role: str | None = None) -> LaneNamer:
    """Lane names from a trace: each agent's local address is its role; the DUT's address is the DUT."""
    agents: dict[str, str] = {}
    for m in trace.get("messages", []):
        local = m.get("local")
        if local and m.get("party"):
            agents.setdefault(endpoint(str(local[0]), int(local[1])), str(m["party"]))
    dut = trace.get("dut") or {}
    address = dut.get("address")
    dut_addr = endpoint(str(address[0]), int(address[1])) if address else None
    if dut_role is None:
        missing = [r for r in ROLE_ORDER if r not in agents.values()]
        if set(agents.values()) <= set(ROLE_ORDER) and len(missing) == 1:
            dut_role = missing[0]
    return LaneNamer(agents, dut_addr, str(dut.get("name") or ""), dut_role)


# --------------------------------------------------------------------------------------
# builders
# --------------------------------------------------------------------------------------

def ladder_from_trace(trace: dict, wire: Sequence | None = None, dut_role: str | None = None,
                      title: str | None = None) -> Ladder:
    """The ladder of a trace dict. With `wire` (WireMessage/WireDefect list), arrows come from the
    wire and the trace gives lane names, step numbers and the failure marker."""
    namer = namer_from_trace(trace, dut_role)
    if wire is None:
        arrows = _arrows_from_trace(trace, namer)
    else:
        arrows = _arrows_from_wire(wire, namer)
        _annotate_from_trace(arrows, trace)
    ladder = Ladder(title if title is not None else str(trace.get("scenario") or ""), [], [], 0.0)
    rows: list[Arrow | Note] = list(arrows)
    rows += _dut_notes(trace, namer)
    failure = _failure_note(trace, namer, arrows)
    if failure is not None:
        rows.append(failure)
    return _finish(ladder, rows, namer)


def ladder_from_wire(entries: Iterable, names: LaneNamer | None = None, title: str = "") -> Ladder:
    """The ladder of wire messages and defects (from `Capture.trace()` or `read_pcap()`)."""
    namer = names or LaneNamer()
    arrows = _arrows_from_wire(list(entries), namer)
    return _finish(Ladder(title, [], [], 0.0), list(arrows), namer)


def ladder_from_pcap(path: str | os.PathLike, trace: dict | None = None, title: str | None = None) -> Ladder:
    """The ladder of any pcap/pcapng file; with `trace`, lanes are named after the test's parties.
    Raises FileNotFoundError, or referee.wire.WireError for a file that is not a capture."""
    from referee.wire import read_pcap
    wt = read_pcap(path)
    entries = sorted([*wt.messages, *wt.defects], key=lambda e: e.time)
    name = title if title is not None else os.path.basename(os.fspath(path))
    if trace is not None:
        return ladder_from_trace(trace, wire=entries, title=name)
    return ladder_from_wire(entries, title=name)


def _finish(ladder: Ladder, rows: list[Arrow | Note], namer: LaneNamer) -> Ladder:
    """Sort the rows, cut very long flows, link NAT translations, order the lanes. Times in the
    drawing are relative to the first row."""
    rows.sort(key=lambda r: r.time)
    if len(rows) > MAX_ROWS:        # keep the start, and the failing step wherever it is
        rest = rows[MAX_ROWS:]
        failing = [r for r in rest if (isinstance(r, Note) and r.kind == "failure") or
                   (isinstance(r, Arrow) and r.failed)]
        cut = Note(rows[MAX_ROWS - 1].time, "", f"{len(rest) - len(failing)} more rows not drawn", kind="cut")
        rows = rows[:MAX_ROWS] + [cut] + failing
    ladder.rows = rows
    ladder.t0 = rows[0].time if rows else 0.0
    _link_translations(ladder.rows)
    for note in ladder.rows:
        if isinstance(note, Note) and note.lane and note.lane not in namer.lanes:
            note.lane = ""
    ladder.lanes = _nat_adjacent(namer.ordered(), ladder.rows)
    return ladder


def _nat_adjacent(lanes: list[Lane], rows: list[Arrow | Note]) -> list[Lane]:
    """Put the two addresses a NAT translated between (private and public) side by side, so the
    NAT's lane sits between the host behind it and the host in front of it."""
    keys = [lane.key for lane in lanes]
    moved: set[str] = set()
    for row in rows:
        if not isinstance(row, Arrow) or row.translated_from is None:
            continue
        before = rows[row.translated_from]
        assert isinstance(before, Arrow)
        pair = ((before.src, row.src) if before.src != row.src else
                (before.dst, row.dst) if before.dst != row.dst else None)
        if pair is None or pair[1] in moved or pair[0] not in keys or pair[1] not in keys:
            continue
        anchor, mover = pair
        keys.remove(mover)
        keys.insert(keys.index(anchor) + 1, mover)
        moved.update(pair)
    by_key = {lane.key: lane for lane in lanes}
    return [by_key[k] for k in keys]


def _arrows_from_trace(trace: dict, namer: LaneNamer) -> list[Arrow]:
    """One arrow per message; a message logged as sent by one agent and received by another is one."""
    arrows: list[Arrow] = []
    pending: dict[tuple, list[Arrow]] = {}      # sent, not yet paired with a receive
    for m in sorted(trace.get("messages", []), key=lambda m: m.get("time", 0)):
        raw = str(m.get("raw", "")).encode("utf-8")
        local = endpoint(str(m["local"][0]), int(m["local"][1]))
        remote = endpoint(str(m["remote"][0]), int(m["remote"][1]))
        src, dst = (local, remote) if m.get("direction") == "sent" else (remote, local)
        pair_key = (src, dst, raw)
        time = float(m.get("time", 0))
        if m.get("direction") == "received":
            for sent in pending.get(pair_key, []):
                if time - sent.time <= PAIR_WINDOW:
                    pending[pair_key].remove(sent)
                    sent.arrived = time
                    # the step that checked a message is shown rather than the one that sent it
                    sent.step = m.get("step") or sent.step
                    sent.error = sent.error or m.get("error")
                    break
            else:
                arrow = _trace_arrow(m, raw, src, dst, namer)
                arrow.arrived = time
                arrows.append(arrow)
            continue
        arrow = _trace_arrow(m, raw, src, dst, namer)
        arrows.append(arrow)
        pending.setdefault(pair_key, []).append(arrow)
    return arrows


def _trace_arrow(m: dict, raw: bytes, src: str, dst: str, namer: LaneNamer) -> Arrow:
    arrow = _arrow_for(raw, float(m.get("time", 0)), m.get("error"))
    arrow.src, arrow.dst = namer.lane_for(src), namer.lane_for(dst)
    arrow.src_addr, arrow.dst_addr = src, dst
    arrow.transport = str(m.get("transport", "")).upper()
    arrow.retransmission = bool(m.get("retransmission"))
    arrow.step = m.get("step")
    return arrow


def _arrows_from_wire(entries: Sequence, namer: LaneNamer) -> list[Arrow]:
    arrows: list[Arrow] = []
    seen: set[tuple] = set()
    for e in entries:
        error = getattr(e, "reason", None)          # WireDefect
        arrow = _arrow_for(e.raw, e.time, error)
        src, dst = endpoint(e.src, e.sport), endpoint(e.dst, e.dport)
        arrow.src, arrow.dst = namer.lane_for(src, e.iface), namer.lane_for(dst, e.iface)
        arrow.src_addr, arrow.dst_addr = src, dst
        arrow.transport, arrow.iface = e.transport, e.iface
        same = (e.iface, src, dst, e.raw)
        arrow.retransmission = same in seen
        seen.add(same)
        arrows.append(arrow)
    return arrows


def _annotate_from_trace(arrows: list[Arrow], trace: dict) -> None:
    """Carry step numbers, retransmission flags and errors from the trace to the wire arrows."""
    by_raw: dict[bytes, list[dict]] = {}
    for m in trace.get("messages", []):
        by_raw.setdefault(str(m.get("raw", "")).encode("utf-8"), []).append(m)
    for arrow in arrows:
        # received copies first: the step that checked a message wins over the one that sent it
        entries = sorted(by_raw.get(arrow.text.encode("utf-8"), []), key=lambda m: m.get("direction") != "received")
        for m in entries:
            arrow.step = arrow.step or m.get("step")
            arrow.retransmission = arrow.retransmission or bool(m.get("retransmission"))


def _dut_notes(trace: dict, namer: LaneNamer) -> list[Note]:
    notes = []
    lane = namer.dut if namer.dut in namer.lanes else ""
    for ev in trace.get("dut_events", []):
        fields = ev.get("fields") or {}
        detail = ", ".join(f"{k}={v}" for k, v in fields.items())
        notes.append(Note(float(ev.get("time", 0)), lane, f"DUT {ev.get('kind', 'event')}", detail))
    return notes


def _failure_note(trace: dict, namer: LaneNamer, arrows: list[Arrow]) -> Note | None:
    """The failing step as a note at the time it failed; the arrows that belong to it are marked."""
    step = next((s for s in trace.get("steps", []) if s.get("status") == "failed"), None)
    if step is None and not trace.get("failure"):
        return None
    if step is None:
        end = max([a.time for a in arrows], default=float(trace.get("started") or 0))
        return Note(end, "", "test failed", str(trace.get("failure") or ""), kind="failure")
    index = str(step.get("index", ""))
    words = str(step.get("description", "")).split()
    party = words[0] if words and words[0] in namer.lanes else None
    wanted = _expected_kind(words)
    start, end = float(step.get("started") or 0), float(step.get("ended") or 0)
    for arrow in arrows:
        arrived = arrow.arrived if arrow.arrived is not None else arrow.time
        seen_while_waiting = (start <= arrived <= end and (party is None or arrow.dst == party)
                              and (wanted is None or arrow.kind == wanted))
        if arrow.step == index or seen_while_waiting:
            arrow.failed = True
    text = f"step {index} failed: {step.get('description', '')}"
    detail = str(step.get("detail") or trace.get("failure") or "")
    return Note(end, party or "", text, detail, kind="failure")


def _expected_kind(words: list[str]) -> str | None:
    """'transferor expects 202' -> 'response'; 'transferor expects NOTIFY' -> 'request'; else None."""
    if len(words) < 3 or words[1] != "expects":
        return None
    what = words[2]
    if re.fullmatch(r"(>=|<=|>|<)?[1-6](\d\d|xx)", what):
        return "response"
    if re.fullmatch(r"[A-Z]+", what):
        return "request"
    return None


def _link_translations(rows: list[Arrow | Note]) -> None:
    """Mark an arrow as the NAT translation of an earlier one: same message key, another interface."""
    open_: dict[tuple, list[int]] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, Arrow) or not row.key or row.iface is None or row.retransmission:
            continue
        match = None
        for j in open_.get(row.key, []):
            before = rows[j]
            assert isinstance(before, Arrow)
            if before.iface != row.iface and row.time - before.time <= NAT_WINDOW:
                match = j
                break
        if match is None:
            open_.setdefault(row.key, []).append(i)
            continue
        open_[row.key].remove(match)
        before = rows[match]
        assert isinstance(before, Arrow)
        row.translated_from = match
        row.rewritten = _rewritten(before.text, row.text)
        row.step = row.step or before.step


def _rewritten(before: str, after: str) -> list[str]:
    """Names of the headers (and 'body') whose values differ between two versions of a message."""
    try:
        a, b = sip.parse(before.encode("utf-8")), sip.parse(after.encode("utf-8"))
    except sip.SipParseError:
        return []
    names: list[str] = []
    for name in dict.fromkeys(sip.canonical_name(n) for n, _ in [*a.headers, *b.headers]):
        if a.header_all(name) != b.header_all(name) and name != "Content-Length":
            names.append(name)
    if a.body != b.body:
        names.append("body")
    return names


def ladder_for_test(trace: dict, dut_role: str | None = None, title: str | None = None,
                    max_pcap_bytes: int = 20 << 20) -> Ladder:
    """The ladder shown for one test: from its trace; from its pcap (named and annotated by the
    trace) when the capture saw more than one interface, as behind a NAT."""
    pcap = trace.get("pcap")
    if pcap and os.path.isfile(pcap) and os.path.getsize(pcap) <= max_pcap_bytes and _is_pcapng(pcap):
        from referee.wire import WireError, read_pcap
        try:
            wt = read_pcap(pcap)
        except (OSError, WireError):
            wt = None
        if wt is not None and len({m.iface for m in [*wt.messages, *wt.defects]}) > 1:
            entries = sorted([*wt.messages, *wt.defects], key=lambda e: e.time)
            return ladder_from_trace(trace, wire=entries, dut_role=dut_role, title=title)
    return ladder_from_trace(trace, dut_role=dut_role, title=title)


def _is_pcapng(path: str) -> bool:
    """Only a pcapng file names the interface of each frame (a classic pcap has one link)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x0a\x0d\x0d\x0a"
    except OSError:
        return False
