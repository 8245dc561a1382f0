"""Ladder diagrams from a real flow: three referee agents over loopback, traced and captured.

The flow has a call, a REFER accepted with 202, crafted bytes that are not SIP, an OPTIONS the
target lets the transferor retransmit, and a last step that fails (no NOTIFY ever comes).
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import time

import pytest
from lxml import etree

from referee.agent import Agent
from referee.report.cli_ladder import main as ladder_main
from referee.report.ladder import MAX_ROWS, ladder_from_pcap, ladder_from_trace, ladder_from_wire
from referee.report.ladder_render import render_html, render_svg
from referee.scenario import Binding, Flow, StepFailed

from report_helpers import python, run_command

SVG = "{http://www.w3.org/2000/svg}"
ROLES = ("transferor", "transferee", "target")


async def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the bound")
        await asyncio.sleep(0.02)


async def _transfer_flow(pcap: pathlib.Path) -> dict:
    from referee.wire import Capture
    agents = {name: await Agent.start(name) for name in ROLES}
    capture = None
    try:
        agents["transferee"].auto_answer = 200
        agents["target"].auto_options = None            # let the OPTIONS be retransmitted
        capture = Capture("lo", ports=sorted(a.port for a in agents.values())).start()
        flow = Flow(Binding(agents), "AGENTS-001")
        failure = None
        try:
            await flow.call("call1", "transferor", "transferee")
            await flow.send("REFER", "transferor", call="call1", save="refer",
                            headers={"Refer-To": "<{target.uri}>", "Referred-By": "<{transferor.uri}>"})
            await flow.expect("REFER", "transferee", reply=202)
            await flow.expect(202, "transferor", response_to="refer")
            await flow.send("", "transferor", to="transferee", raw="THIS IS NOT SIP\n\n")
            await flow.send("OPTIONS", "transferor", to="target")
            await _until(lambda: any(e.retransmission for e in agents["transferor"].log))
            await flow.expect("OPTIONS", "target", reply=200)
            await flow.expect("NOTIFY", "transferor", call="call1", timeout=0.3)
        except StepFailed as exc:
            failure = str(exc)
        await asyncio.sleep(0.1)
        capture.stop()
        capture.write_pcap(pcap, fmt="pcap")
        trace = flow.finish(failure)
        trace.pcap = str(pcap)
        return json.loads(json.dumps(trace.to_dict(), default=str))
    finally:
        if capture is not None:
            capture.stop()
        for agent in agents.values():
            await agent.close()


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory) -> tuple[dict, pathlib.Path]:
    pcap = tmp_path_factory.mktemp("flow") / "capture.pcap"
    trace = asyncio.run(asyncio.wait_for(_transfer_flow(pcap), 30))
    return trace, pcap


def _sent(trace: dict) -> list[dict]:
    return [m for m in trace["messages"] if m["direction"] == "sent"]


def test_trace_ladder_lanes_dedup_steps_failure(flow_run):
    trace, _ = flow_run
    assert trace["failure"] and "expects NOTIFY" in trace["failure"]
    ladder = ladder_from_trace(trace)
    assert [lane.key for lane in ladder.lanes] == list(ROLES)
    assert all(lane.kind == "agent" for lane in ladder.lanes)
    # every message was logged twice (sent by one agent, received by another): drawn once
    received = [m for m in trace["messages"] if m["direction"] == "received"]
    assert len(received) == len(_sent(trace))
    assert len(ladder.arrows) == len(_sent(trace))
    labels = [(a.src, a.dst, a.label) for a in ladder.arrows]
    assert ("transferor", "transferee", "INVITE") in labels
    assert ("transferee", "transferor", "202 Accepted") in labels
    refer = next(a for a in ladder.arrows if a.label == "REFER")
    assert refer.step == "3"                           # matched by `transferee expects REFER`
    assert refer.cseq == "CSeq 2 REFER" and "Refer-To: <sip:target@" in refer.text
    accepted = next(a for a in ladder.arrows if a.label == "202 Accepted")
    assert accepted.step == "4"
    # the retransmitted OPTIONS, and the bytes that are not SIP
    options = [a for a in ladder.arrows if a.label == "OPTIONS"]
    assert len(options) >= 2 and not options[0].retransmission and all(a.retransmission for a in options[1:])
    bad = [a for a in ladder.arrows if a.error]
    assert len(bad) == 1 and bad[0].label == "unparsable" and "THIS IS NOT SIP" in bad[0].text
    # the failing step: a note with its description and detail
    notes = [r for r in ladder.rows if getattr(r, "kind", "") == "failure"]
    assert len(notes) == 1 and notes[0].text.startswith("step 8 failed: transferor expects NOTIFY")
    assert "expected NOTIFY" in notes[0].detail
    # rows in time order, times relative to the first
    times = [r.time for r in ladder.rows]
    assert times == sorted(times) and ladder.t0 == times[0]


def test_trace_ladder_svg(flow_run, tmp_path):
    trace, _ = flow_run
    ladder = ladder_from_trace(trace)
    svg = render_svg(ladder, prefix="t")
    root = etree.fromstring(svg.encode())               # well-formed XML
    assert root.tag == f"{SVG}svg"
    groups = root.findall(f".//{SVG}g")
    msgs = [g for g in groups if "msg" in g.get("class", "").split()]
    assert len(msgs) == len(ladder.arrows)
    lanes = [g for g in groups if "lane" in g.get("class", "").split()]
    assert [g.findtext(f"{SVG}text") for g in lanes] == list(ROLES)
    refer = next(g for g in msgs if g.get("data-label") == "REFER")
    assert "Refer-To: <sip:target@" in refer.findtext(f"{SVG}title")      # hover: the whole message
    assert refer.get("data-step") == "3"
    assert [t.text for t in refer.iter(f"{SVG}text") if t.text == "3"]      # the step badge
    retx = [g for g in msgs if "retx" in g.get("class").split()]
    retx_labels = {g.get("data-label") for g in retx}
    assert "OPTIONS (retransmission)" in retx_labels      # (the 200 OK may be repeated to late copies)
    assert retx_labels <= {"OPTIONS (retransmission)", "200 OK (retransmission)"}
    bad = [g for g in msgs if "bad" in g.get("class").split()]
    assert len(bad) == 1 and "THIS IS NOT SIP" in bad[0].findtext(f"{SVG}title")
    fail = [g for g in groups if g.get("class") == "failnote"]
    assert len(fail) == 1 and "step 8 failed" in "".join(fail[0].itertext())
    times = [t.text for g in msgs for t in g.iter(f"{SVG}text") if t.get("class") == "t"]
    assert times[0] == "+0.0 ms" and all(t.endswith(" ms") for t in times)
    page = render_html(ladder)
    assert 'class="panel"' in page and "<script>" in page and page.count('class="msg ') == len(msgs)


def test_failing_step_marks_what_its_party_got_while_waiting(flow_run):
    """A failing expectation marks the messages of the kind it waited for that reached its party
    meanwhile (here: as if the 200 OK to the OPTIONS had come while `transferor` waited)."""
    trace, _ = flow_run
    changed = json.loads(json.dumps(trace))
    failed = next(s for s in changed["steps"] if s["status"] == "failed")
    options_ok = next(m for m in changed["messages"]
                      if m["party"] == "transferor" and m["direction"] == "received" and "OPTIONS" in m["summary"])
    failed["started"] = options_ok["time"] - 0.001
    # it waited for a NOTIFY (a request): a response that came meanwhile is not what it missed
    assert not [a for a in ladder_from_trace(changed).arrows if a.failed]
    failed["description"] = "transferor expects 2xx"
    ladder = ladder_from_trace(changed)
    marked = [a for a in ladder.arrows if a.failed]
    assert marked and marked[0].text == options_ok["raw"]
    assert all(a.label == "200 OK" and a.cseq.endswith(" OPTIONS") and a.dst == "transferor" for a in marked)
    assert 'class="msg ok fail' in render_svg(ladder)


def test_pcap_ladder_one_lane_per_address(flow_run):
    trace, pcap = flow_run
    ladder = ladder_from_pcap(pcap)
    ports = {m["local"][1] for m in trace["messages"]}
    assert {lane.key for lane in ladder.lanes} == {f"127.0.0.1:{p}" for p in ports}
    assert all(lane.kind == "host" for lane in ladder.lanes)
    # what the agents sent is what the wire saw: one arrow per datagram
    assert len(ladder.arrows) == len(_sent(trace))
    assert [a.label for a in ladder.arrows] == [a.label for a in ladder_from_trace(trace).arrows]
    options = [a for a in ladder.arrows if a.label == "OPTIONS"]
    assert [a.retransmission for a in options] == [False] + [True] * (len(options) - 1)
    bad = [a for a in ladder.arrows if a.error]
    assert len(bad) == 1 and "THIS IS NOT SIP" in bad[0].text
    assert not [r for r in ladder.rows if getattr(r, "kind", "") == "failure"]     # a pcap knows no steps


def test_pcap_ladder_named_by_trace(flow_run):
    trace, pcap = flow_run
    ladder = ladder_from_pcap(pcap, trace=trace)
    assert [lane.key for lane in ladder.lanes] == list(ROLES)
    refer = next(a for a in ladder.arrows if a.label == "REFER")
    assert refer.step == "3" and refer.src == "transferor" and refer.dst == "transferee"
    assert [r.text for r in ladder.rows if getattr(r, "kind", "") == "failure"][0].startswith("step 8 failed")


def test_cli_svg_and_html(flow_run, tmp_path, capsys):
    _, pcap = flow_run
    out = tmp_path / "ladder.svg"
    assert ladder_main([str(pcap), "-o", str(out)]) == 0
    root = etree.parse(str(out)).getroot()
    assert root.tag == f"{SVG}svg"
    assert len([g for g in root.iter(f"{SVG}g") if "msg" in g.get("class", "").split()]) >= 10
    assert "messages, 3 lanes" in capsys.readouterr().out
    page = tmp_path / "ladder.html"
    done = run_command([python(), "-m", "referee.report.cli_ladder", str(pcap), "-o", str(page)])
    assert done.returncode == 0, done.stderr
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text and 'class="panel-text"' in text


@pytest.mark.parametrize("content, expected", [
    (None, "no such file"),
    (b"", "is not a pcap or pcapng file"),
    (b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\n\r\n", "is not a pcap or pcapng file"),
])
def test_cli_errors_are_one_line_exit_2(tmp_path, capsys, content, expected):
    path = tmp_path / "input.pcap"
    if content is not None:
        path.write_bytes(content)
    assert ladder_main([str(path), "-o", str(tmp_path / "x.svg")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("referee ladder: error: ") and expected in lines[0]
    assert not (tmp_path / "x.svg").exists()


def test_cli_rejects_unknown_output_format(flow_run, tmp_path):
    _, pcap = flow_run
    assert ladder_main([str(pcap), "-o", str(tmp_path / "x.png")]) == 2


# -- NAT: the same message before and after the NAT ---------------------------------------

LAN, NAT_WAN, WAN = "198.18.0.2", "198.19.0.1", "198.19.0.2"


def _invite() -> bytes:
    sdp = (f"v=0\r\no=alice 1 1 IN IP4 {LAN}\r\ns=-\r\nc=IN IP4 {LAN}\r\nt=0 0\r\n"
           "m=audio 40000 RTP/AVP 0\r\n")
    head = (f"INVITE sip:bob@{WAN} SIP/2.0\r\nVia: SIP/2.0/UDP {LAN}:5060;branch=z9hG4bKnat1\r\n"
            f"From: <sip:alice@{LAN}>;tag=a1\r\nTo: <sip:bob@{WAN}>\r\nCall-ID: nat1@{LAN}\r\n"
            f"CSeq: 1 INVITE\r\nContact: <sip:alice@{LAN}:5060>\r\nMax-Forwards: 70\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n")
    return (head + sdp).encode()


def _ok(request: bytes) -> bytes:
    lines = request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    keep = [line for line in lines if line.split(b":", 1)[0] in (b"Via", b"From", b"Call-ID", b"CSeq")]
    to = next(line for line in lines if line.startswith(b"To:")) + b";tag=b1"
    return b"SIP/2.0 200 OK\r\n" + b"\r\n".join(keep + [to, b"Content-Length: 0"]) + b"\r\n\r\n"


def test_nat_translation_drawn_as_two_arrows(tmp_path):
    from referee.wire import Topology, available, call_in_netns
    ok, reason = available(alg=True)
    if not ok:
        pytest.skip(f"no NAT topology here: {reason}")
    import socket
    topo = Topology(alg=True, prefix="rfrp")
    sockets: list[socket.socket] = []
    try:
        def udp(addr: str) -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((addr, 5060))
            s.settimeout(3.0)
            return s
        lan = call_in_netns(topo.lan, lambda: udp(LAN))
        wan = call_in_netns(topo.wan, lambda: udp(WAN))
        sockets += [lan, wan]
        with topo.capture(ports=[5060]) as cap:
            lan.sendto(_invite(), (WAN, 5060))
            data, src = wan.recvfrom(65535)
            wan.sendto(_ok(data), src)
            lan.recvfrom(65535)
        pcapng = cap.write_pcap(tmp_path / "nat.pcapng", fmt="pcapng")
    finally:
        for s in sockets:
            s.close()
        topo.teardown()
    ladder = ladder_from_pcap(pcapng)
    # the NAT's public address between the host behind it and the host in front of it
    assert [lane.key for lane in ladder.lanes] == [f"{LAN}:5060", f"{NAT_WAN}:5060", f"{WAN}:5060"]
    assert {a.iface for a in ladder.arrows} == {"lan0", "wan0"}
    assert len(ladder.arrows) == 4                      # INVITE and 200 OK, each on both sides
    invites = [a for a in ladder.arrows if a.label == "INVITE"]
    assert [a.iface for a in invites] == ["lan0", "wan0"]
    before, after = invites
    assert before.translated_from is None
    assert ladder.rows[after.translated_from] is before
    assert before.src_addr == f"{LAN}:5060" and after.src_addr == f"{NAT_WAN}:5060"
    assert {"Via", "Contact", "From", "body"} <= set(after.rewritten)
    assert "Call-ID" not in after.rewritten
    oks = [a for a in ladder.arrows if a.label == "200 OK"]
    assert oks[1].translated_from is not None and ladder.rows[oks[1].translated_from] is oks[0]
    svg = render_svg(ladder)
    root = etree.fromstring(svg.encode())
    marks = [g for g in root.iter(f"{SVG}g") if g.get("class") == "natmark"]
    assert len(marks) == 2 and "rewritten: Via" in marks[0].findtext(f"{SVG}title")
    wire = ladder_from_wire([])
    assert wire.rows == [] and "no SIP messages" in render_svg(wire)



def test_long_flow_keeps_its_start_and_its_failing_step(flow_run):
    trace, _ = flow_run
    long = json.loads(json.dumps(trace))
    first = min(m["time"] for m in trace["messages"])
    long["messages"] = [{**m, "time": m["time"] - first - 100 + k * 0.01}       # copies, all before the failure
                        for k in range(400) for m in trace["messages"]]
    ladder = ladder_from_trace(long)
    assert len(ladder.rows) == MAX_ROWS + 2
    cut, failure = ladder.rows[-2:]
    assert cut.kind == "cut" and cut.text.endswith("more rows not drawn")
    assert failure.kind == "failure" and failure.text.startswith("step 8 failed")
