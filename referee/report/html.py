"""index.html: the run at a glance for a QA engineer, self-contained (inline CSS/JS, works from file://).

Top: DUT, time, overall MUST/SHOULD verdict, counts. Then summaries by role and by RFC (pass
rates per level), the list of tests, and one section per test: verdict, requirement (RFC §
level, title, text), failure text, findings, steps, the ladder with a message panel, the
messages, and links to the test's trace.json, capture.pcap and ladder.svg.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import re

from . import assets
from .ladder import Arrow, Ladder
from .ladder_render import clean, format_offset, ladder_box
from .results import RunInfo, TestRecord, counts, group, level_rates, relative

LABELS = {"passed": "PASS", "failed": "FAIL", "inconclusive": "INCONCLUSIVE", "error": "ERROR",
          "known_failure": "KNOWN FAILURE", "unexpected_pass": "UNEXPECTED PASS", "skipped": "N/A",
          "warning": "WARNING"}
UNJUDGED = ("inconclusive", "error")


def shown_verdict(record: TestRecord, should_as_warning: bool) -> str:
    if record.verdict == "failed" and record.soft and should_as_warning:
        return "warning"
    return record.verdict


def anchor(record: TestRecord) -> str:
    return "t-" + re.sub(r"[^A-Za-z0-9_-]+", "_", record.nodeid.split("::")[-1]).strip("_")


def _e(text: object) -> str:
    return clean(str(text))


def _badge(verdict: str) -> str:
    return f'<span class="badge v-{verdict}">{LABELS.get(verdict, verdict.upper())}</span>'


def _level(level: str) -> str:
    return f'<span class="lvl lvl-{_e(level)}">{_e(level)}</span>' if level else ""


def _rate(rate: dict) -> str:
    if not rate["applicable"]:
        return '<div class="rate"><div class="bar none"></div><b class="muted">—</b></div>'
    pct = 100 * rate["rate"]
    return (f'<div class="rate"><div class="bar"><i style="width:{pct:.1f}%"></i></div>'
            f'<b>{rate["met"]}/{rate["applicable"]} · {pct:.0f}%</b></div>')


def _summary_table(title: str, records: list[TestRecord], key: str) -> str:
    rows = []
    for name, rs in group(records, key).items():
        c, rates = counts(rs), level_rates(rs)
        rows.append(f"<tr><td><b>{_e(name)}</b></td><td class=num>{c['total']}</td>"
                    f"<td class=num>{c['passed'] + c['unexpected_pass']}</td><td class=num>{c['failed']}</td>"
                    f"<td class=num>{c['inconclusive']}</td>"
                    f"<td class=num>{c['known_failure']}</td><td class=num>{c['error']}</td>"
                    f"<td class=num>{c['skipped']}</td>"
                    + "".join(f"<td>{_rate(rates[level])}</td>" for level in ("MUST", "SHOULD")) + "</tr>")
    return (f'<h2>{_e(title)}</h2><table class="summary" data-summary="{key}"><thead><tr><th>{_e(key.upper() if key == "rfc" else key)}</th>'
            "<th>tests</th><th>passed</th><th>failed</th><th>inconclusive</th><th>known failures</th><th>errors</th>"
            "<th>n/a</th>"
            "<th>MUST met</th><th>SHOULD met</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _banner(records: list[TestRecord], run: RunInfo) -> str:
    out = []
    if run.interrupted:
        out.append('<div class="banner warn">Run interrupted (or stopped early) — the results below are partial.</div>')
    if run.middlebox:
        out.append(f'<div class="banner warn" id="middlebox">Middlebox: {_e(run.middlebox)}. Failures that it '
                   "could have caused are reported INCONCLUSIVE.</div>")
    rates = level_rates(records)
    must, should = rates["MUST"], rates["SHOULD"]
    errors = sum(1 for r in records if r.verdict == "error")
    inconclusive = sum(1 for r in records if r.verdict == "inconclusive")
    parts = []
    if must["applicable"]:
        parts.append(f"MUST requirements met: {must['met']} of {must['applicable']}")
    if should["applicable"]:
        parts.append(f"SHOULD: {should['met']} of {should['applicable']}")
    if inconclusive:
        parts.append(f"{inconclusive} inconclusive (not judged)")
    if errors:
        parts.append(f"{errors} error{'s' if errors > 1 else ''} of the suite or its environment")
    if not parts:
        parts.append(f"{len(records)} tests, none with a requirement verdict")
    ok = must["met"] == must["applicable"] and not errors and not inconclusive
    cls = "pass" if ok and should["met"] == should["applicable"] else "warn" if ok else "fail"
    out.append(f'<div class="banner {cls}" id="verdict">{_e(" — ".join(parts))}</div>')
    return "".join(out)


def _chips(records: list[TestRecord]) -> str:
    c = counts(records)
    items = [("passed", c["passed"]), ("failed", c["failed"]), ("inconclusive", c["inconclusive"]),
             ("known failures", c["known_failure"]),
             ("unexpected passes", c["unexpected_pass"]), ("errors", c["error"]), ("not applicable", c["skipped"])]
    return '<div class="chips">' + "".join(
        f'<div class="chip" data-count="{_e(name)}">{n}<span>{_e(name)}</span></div>'
        for name, n in items if n or name in ("passed", "failed")) + "</div>"


def _test_list(records: list[TestRecord], run: RunInfo) -> str:
    filters = [("all", "All"), ("problems", "Not passed"), ("failed", "Failed"), ("inconclusive", "Inconclusive"),
               ("error", "Errors"), ("known_failure", "Known failures"), ("passed", "Passed"), ("skipped", "N/A")]
    buttons = "".join(f'<button data-filter="{f}" class="{"on" if f == "all" else ""}">{label}</button>'
                      for f, label in filters)
    rows = []
    for r in records:
        v = shown_verdict(r, run.should_as_warning)
        problem = "1" if r.verdict in ("failed",) + UNJUDGED else "0"
        rows.append(f'<tr class="test-row" data-target="{anchor(r)}" data-verdict="{r.verdict}" data-problem="{problem}">'
                    f"<td>{_badge(v)}</td><td class=mono><a href=\"#{anchor(r)}\">{_e(r.name)}</a></td>"
                    f"<td>{_e(r.title)}</td><td>{_e(r.rfc)} {('§' + _e(r.section)) if r.section else ''} {_level(r.level)}</td>"
                    f"<td>{_e(r.role)}</td><td class=num>{r.duration:.1f} s</td></tr>")
    return (f'<h2>Tests</h2><div class="filters">{buttons}</div>'
            '<table id="tests"><thead><tr><th>verdict</th><th>test purpose</th><th>title</th><th>requirement</th>'
            "<th>role</th><th>time</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _link(label: str, path: str | None, base: pathlib.Path) -> str:
    if not path or not os.path.exists(path):
        return ""
    return f'<a href="{_e(relative(path, base))}">{_e(label)}</a>'


def _steps(trace: dict) -> str:
    steps = trace.get("steps") or []
    if not steps:
        return ""
    rows = "".join(
        f'<tr class="{_e(s.get("status", ""))}"><td class=mono>{_e(s.get("index", ""))}</td>'
        f'<td class="ph ph-{_e(s.get("phase") or "body")}">{_e(s.get("phase") or "body")}</td>'
        f'<td class="st st-{_e(s.get("status", ""))}">{_e(s.get("status", ""))}</td>'
        f'<td>{_e(s.get("description", ""))}</td><td class=mono>{_e(s.get("line", ""))}</td>'
        f'<td><pre>{_e(s.get("detail") or "")}</pre></td></tr>' for s in steps)
    return ('<details class="stepbox" open><summary>Steps</summary><table class="steps"><thead><tr><th>#</th>'
            "<th>phase</th><th>status</th><th>step</th><th>line</th><th>detail</th></tr></thead><tbody>" + rows
            + "</tbody></table></details>")


def _evidence(evidence: list[dict], record: TestRecord, base: pathlib.Path) -> str:
    """The DUT's messages (or their absence) the FAIL rests on, with their capture.pcap frames."""
    pcap = _link("capture.pcap", record.pcap, base)
    rows = []
    for e in evidence:
        frame = f"{e['frame']}" if e.get("frame") else ("—" if e.get("message") else "not sent")
        rows.append(f"<tr><td>{_e(e.get('party', ''))}</td><td class=mono>{_e(e.get('message') or '(nothing)')}</td>"
                    f"<td class=mono>{_e(e.get('source') or '')}</td><td>{_e(e.get('part') or '')}</td>"
                    f"<td>{_e(e.get('expected') or '')}</td><td><pre>{_e(e.get('seen') or '')}</pre></td>"
                    f"<td class=num>{_e(frame)}</td></tr>")
    return (f'<div class="evidence"><h4>Evidence {("(frames of " + pcap + ")") if pcap else ""}</h4>'
            '<table class="steps"><thead><tr><th>at</th><th>message</th><th>from</th><th>part</th><th>expected</th>'
            "<th>seen</th><th>frame</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")


def _messages(ladder: Ladder, prefix: str) -> str:
    rows = []
    for i, row in enumerate(ladder.rows):
        if not isinstance(row, Arrow):
            continue
        a: Arrow = row
        cls = "fail" if a.failed else ""
        what = a.label + (f" ({a.cseq})" if a.cseq else "") + (" — retransmission" if a.retransmission else "")
        if a.error:
            what = f"unparsable: {a.error}"
        rows.append(f'<tr class="{cls}" data-msg="{prefix}-m{i}"><td class=mono>{format_offset(a.time - ladder.t0)}</td>'
                    f"<td>{_e(a.src)}</td><td>{_e(a.dst)}</td><td>{_e(what)}</td><td class=mono>{_e(a.step or '')}</td>"
                    f"<td class=mono>{_e(a.transport)}{(' ' + _e(a.iface)) if a.iface else ''}</td></tr>")
    if not rows:
        return ""
    return (f'<details class="msgbox"><summary>Messages ({len(rows)})</summary><table class="msgs"><thead><tr>'
            "<th>time</th><th>from</th><th>to</th><th>message</th><th>step</th><th>transport</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></details>")


LEGEND = ('<div class="legend"><span><i style="border-color:#1f5fa8"></i>request</span>'
          '<span><i style="border-color:#8b949c"></i>1xx</span><span><i style="border-color:#2e7d32"></i>2xx</span>'
          '<span><i style="border-color:#c25e00"></i>3xx–6xx</span>'
          '<span><i style="border-color:#c62828;border-top-width:3px"></i>failing step</span>'
          '<span><i style="border-top-style:dashed"></i>retransmission</span>'
          '<span><i style="border-color:#7b1fa2;border-top-style:dotted"></i>unparsable</span>'
          '<span>● step that matched the message</span><span>hover: whole message · click: side panel</span></div>')


def _test_section(record: TestRecord, trace: dict | None, ladder: Ladder | None, run: RunInfo,
                  base: pathlib.Path, index: int) -> str:
    v = shown_verdict(record, run.should_as_warning)
    is_open = " open" if record.verdict in ("failed",) + UNJUDGED else ""
    prefix = f"L{index}"
    out = [f'<details class="test v-{record.verdict}{" warning" if v == "warning" else ""}" id="{anchor(record)}" '
           f'data-verdict="{record.verdict}" data-problem="{"1" if record.verdict in ("failed",) + UNJUDGED else "0"}"{is_open}>'
           f'<summary>{_badge(v)}<span class="tp">{_e(record.name)}</span><span class="ttl">{_e(record.title)}</span>'
           f"{_level(record.level)}<span class=muted>{_e(record.reference)}</span>"
           f"<span class=muted>{record.duration:.1f} s</span></summary><div class=body>"]
    if record.reference:
        out.append(f'<div class="req"><span class="ref">{_e(record.reference)}</span>'
                   f'{" — " + _e(record.title) if record.title else ""}'
                   f' <span class=muted>· DUT role: {_e(record.role)}'
                   + (f' · transport: {_e(record.properties["transport"])}' if record.properties.get("transport") else "")
                   + f' · {_e(record.nodeid)}</span>'
                   + (f"<blockquote>{_e(record.requirement)}</blockquote>" if record.requirement else "") + "</div>")
    else:
        out.append(f'<div class="req muted">{_e(record.nodeid)}</div>')
    if record.verdict == "known_failure":
        out.append(f'<div class="findings"><h4>Known deviation of this DUT (listed in its profile)</h4>'
                   f"<pre>{_e(record.known_failure or record.message.split(chr(10))[0])}</pre></div>")
    if record.verdict in ("failed", "inconclusive", "error", "known_failure") and record.message:
        title = {"failed": "Why it failed", "inconclusive": "Why it was not judged",
                 "error": "Error of the suite or its environment (nothing is said about the DUT)",
                 "known_failure": "How it fails"}[record.verdict]
        out.append(f'<div class="failure v-{record.verdict}"><h4>{title}</h4><pre>{_e(record.message)}</pre></div>')
    evidence = (trace or {}).get("evidence") or []
    if evidence and record.verdict in ("failed", "known_failure"):
        out.append(_evidence(evidence, record, base))
    elif record.verdict == "skipped":
        out.append(f'<div class="req muted">Not run: {_e(record.message)}</div>')
    findings = (trace or {}).get("findings") or []
    if findings:
        out.append('<div class="findings"><h4>Findings</h4><ul>' +
                   "".join(f"<li><pre>{_e(f)}</pre></li>" for f in findings) + "</ul></div>")
    links = [_link("trace.json", record.trace, base), _link("capture.pcap", record.pcap, base),
             _link("ladder.svg", record.ladder, base)]
    if any(links):
        out.append('<div class="links">' + " ".join(x for x in links if x) + "</div>")
    if trace:
        out.append(_steps(trace))
    if ladder is not None:
        out.append(LEGEND)
        out.append(ladder_box(ladder, prefix))
        out.append(_messages(ladder, prefix))
    out.append("</div></details>")
    return "".join(out)


def render_index(records: list[TestRecord], run: RunInfo, base: pathlib.Path,
                 traces: dict[str, dict | None], ladders: dict[str, Ladder | None]) -> str:
    finished = datetime.datetime.fromtimestamp(run.finished or run.started).astimezone()
    head = (f'<header class="top"><h1>referee — SIP REFER conformance report</h1><div class="sub">'
            f"DUT <b>{_e(run.dut or 'unknown')}</b> · started {_e(run.started_iso)} · "
            f"{max(0.0, run.finished - run.started):.1f} s · {len(records)} tests"
            f"{' · SHOULD failures reported as warnings' if run.should_as_warning else ''}</div></header>")
    body = [_banner(records, run), _chips(records),
            _summary_table("By role", records, "role"), _summary_table("By RFC", records, "rfc"),
            _test_list(records, run), "<h2>Details</h2>"]
    for i, r in enumerate(records):
        body.append(_test_section(r, traces.get(r.nodeid), ladders.get(r.nodeid), run, base, i))
    files = " · ".join(f'<a href="{name}">{name}</a>' for name in ("junit.xml", "certification.xml", "results.json")
                       if (base / name).exists())
    body.append(f"<footer>Generated by referee on {_e(finished.isoformat(timespec='seconds'))} · {files}</footer>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>referee report — {_e(run.dut)}</title><style>{assets.PAGE_CSS}</style></head><body>"
            f"{head}<main>{''.join(body)}</main><script>{assets.PAGE_JS}</script></body></html>\n")


def write_index(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)

