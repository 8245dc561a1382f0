"""Ladder diagrams as SVG (standalone, or inline in a page) and as a one-page HTML viewer.

Each message is an SVG group `<g class="msg ...">` whose `<title>` is the whole message (the
browser shows it on hover) and whose data-* attributes carry from/to/time/step; the HTML pages
show the message in a side panel when it is clicked (see assets.py).
"""

from __future__ import annotations

import html
import re

from . import assets
from .ladder import Arrow, Ladder, Lane, Note

GUTTER = 118          # left column: relative time and interface
TOP = 70              # lane headers
ROW = 30              # one message
NOTE_ROW = 26
FAIL_ROW = 44
GAP_ROW = 20
GAP_SECONDS = 1.0     # a pause longer than this gets a "⋯ 5.0 s ⋯" row
CHAR = 6.9            # px per character at 12 px (estimate for layout)
MIN_SPACING, MAX_SPACING = 190, 330
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def clean(text: str) -> str:
    """Text safe inside XML: characters XML 1.0 forbids become U+FFFD, then escaped."""
    return html.escape(_XML_BAD.sub("\ufffd", text), quote=True)


def arrow_class(a: Arrow) -> str:
    if a.error:
        cls = "bad"
    elif a.kind == "request":
        cls = "req"
    elif a.status < 200:
        cls = "prov"
    elif a.status < 300:
        cls = "ok"
    else:
        cls = "err"
    extra = [cls]
    if a.failed:
        extra.append("fail")
    if a.retransmission:
        extra.append("retx")
    if a.translated_from is not None:
        extra.append("nat")
    return " ".join(extra)


def arrow_caption(a: Arrow) -> tuple[str, str]:
    """(main label, small text): 'REFER', 'CSeq 2' / '202 Accepted', 'CSeq 2 REFER'."""
    if a.error:
        return "⚠ unparsable", a.hint
    cseq = a.cseq
    if a.kind == "request" and cseq.endswith(" " + a.label):
        cseq = cseq[: -len(a.label) - 1]
    small = " · ".join(x for x in (a.hint, cseq) if x)
    main = a.label + (" (retransmission)" if a.retransmission else "")
    return main, small


def format_offset(seconds: float) -> str:
    return f"+{seconds * 1000:.1f} ms"


def _spacing(ladder: Ladder) -> int:
    widest = 0
    for a in ladder.arrows:
        main, small = arrow_caption(a)
        widest = max(widest, len(main) * CHAR + len(small) * CHAR * 0.85 + 40)
    for lane in ladder.lanes:
        widest = max(widest, len(lane.label) * CHAR * 1.1 + 24)
    return int(min(MAX_SPACING, max(MIN_SPACING, widest)))


def _layout(ladder: Ladder) -> tuple[list[tuple[str, object, float]], float]:
    """Vertical positions: (kind, row or gap seconds, y center), and the total height."""
    out: list[tuple[str, object, float]] = []
    y = TOP + 14
    last: float | None = None
    for row in ladder.rows:
        if last is not None and row.time - last > GAP_SECONDS:
            out.append(("gap", row.time - last, y + GAP_ROW / 2))
            y += GAP_ROW
        last = row.time if last is None else max(last, row.time)
        h = ROW if isinstance(row, Arrow) else FAIL_ROW if row.kind == "failure" else NOTE_ROW
        out.append(("row", row, y + h / 2))
        y += h
    return out, y + 16


def render_svg(ladder: Ladder, prefix: str = "l", standalone: bool = True) -> str:
    """The ladder as an SVG document (`standalone`) or an <svg> element to inline in HTML.
    `prefix` keeps element ids unique when several ladders share a page."""
    spacing = _spacing(ladder)
    xs = {lane.key: GUTTER + spacing / 2 + i * spacing for i, lane in enumerate(ladder.lanes)}
    width = int(GUTTER + max(1, len(ladder.lanes)) * spacing + 10)
    placed, height = _layout(ladder)
    height = int(height)
    out: list[str] = []
    head = '<?xml version="1.0" encoding="UTF-8"?>\n' if standalone else ""
    out.append(f'{head}<svg xmlns="http://www.w3.org/2000/svg" class="ladder" id="{prefix}" '
               f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
               f'font-family="DejaVu Sans, Verdana, Arial, sans-serif" font-size="12">')
    out.append(f"<title>{clean(ladder.title or 'SIP ladder')}</title>")
    out.append(f"<style>{assets.LADDER_CSS}</style>")
    out.append("<defs>")
    for cls in ("req", "prov", "ok", "err", "bad", "fail"):
        out.append(f'<marker id="{prefix}-ah-{cls}" class="ah {cls}" viewBox="0 0 10 10" refX="9" refY="5" '
                   'markerUnits="userSpaceOnUse" markerWidth="11" markerHeight="11" orient="auto">'
                   '<path d="M0,0 L10,5 L0,10 z"/></marker>')
    out.append("</defs>")
    out.append(f'<rect class="bg" x="0" y="0" width="{width}" height="{height}"/>')
    for lane in ladder.lanes:
        out.append(_lane(lane, xs[lane.key], spacing, height))
    out.append(f'<text class="colhead" x="{GUTTER - 10}" y="{TOP - 6}" text-anchor="end">time</text>')
    index_of = {id(row): i for i, row in enumerate(ladder.rows)}
    for kind, row, y in placed:
        if kind == "gap":
            out.append(f'<text class="gap" x="{width / 2:.0f}" y="{y + 4:.0f}" text-anchor="middle">'
                       f'⋯ {float(row):.2f} s later ⋯</text>')
        elif isinstance(row, Arrow):
            out.append(_arrow(ladder, row, index_of[id(row)], xs, y, prefix, placed))
        else:
            assert isinstance(row, Note)
            out.append(_note(ladder, row, xs, y, width, spacing))
    if not ladder.rows:
        out.append(f'<text class="gap" x="{width / 2:.0f}" y="{TOP + 30}" text-anchor="middle">'
                   "no SIP messages</text>")
    out.append("</svg>")
    return "\n".join(out)


def _lane(lane: Lane, x: float, spacing: int, height: int) -> str:
    w = spacing - 16
    sub = f'<text class="lanesub" x="{x:.0f}" y="44" text-anchor="middle">{clean(_cut(lane.sublabel, w))}</text>'
    tip = "\n".join(x for x in (lane.label, lane.sublabel, lane.detail) if x)
    return (f'<g class="lane {lane.kind}"><title>{clean(tip)}</title>'
            f'<rect x="{x - w / 2:.0f}" y="6" width="{w:.0f}" height="46" rx="6"/>'
            f'<text class="lanename" x="{x:.0f}" y="26" text-anchor="middle">{clean(_cut(lane.label, w, 1.1))}</text>'
            f"{sub}</g>"
            f'<line class="life" x1="{x:.0f}" y1="52" x2="{x:.0f}" y2="{height - 6}"/>')


def _cut(text: str, width: float, scale: float = 0.85) -> str:
    limit = max(4, int(width / (CHAR * scale)))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _arrow(ladder: Ladder, a: Arrow, index: int, xs: dict[str, float], y: float, prefix: str,
           placed: list) -> str:
    cls = arrow_class(a)
    x1, x2 = xs.get(a.src, GUTTER), xs.get(a.dst, GUTTER)
    main, small = arrow_caption(a)
    marker = "fail" if a.failed else cls.split()[0]
    offset = format_offset(a.time - ladder.t0)
    data = {
        "i": str(index), "label": main, "from": f"{a.src} ({a.src_addr})" if a.src != a.src_addr else a.src,
        "to": f"{a.dst} ({a.dst_addr})" if a.dst != a.dst_addr else a.dst, "time": offset,
        "transport": a.transport, "step": a.step or "", "iface": a.iface or "",
        "error": a.error or "", "rewritten": ", ".join(a.rewritten),
    }
    attrs = " ".join(f'data-{k}="{clean(v)}"' for k, v in data.items() if v)
    tip = a.text if not a.error else f"unparsable: {a.error}\n\n{a.text}"
    if a.translated_from is not None:
        tip = f"NAT translation ({', '.join(a.rewritten) or 'addresses only'} rewritten)\n\n{tip}"
    parts = [f'<g class="msg {cls}" id="{prefix}-m{index}" tabindex="0" {attrs}>',
             f"<title>{clean(tip)}</title>"]
    lo, hi = min(x1, x2), max(x1, x2)
    parts.append(f'<rect class="hit" x="{GUTTER - 112}" y="{y - ROW / 2:.0f}" width="{hi - GUTTER + 124:.0f}" '
                 f'height="{ROW}"/>')
    when = offset + (f" {a.iface}" if a.iface else "")
    parts.append(f'<text class="t" x="{GUTTER - 10}" y="{y + 4:.0f}" text-anchor="end">{clean(when)}</text>')
    if a.src == a.dst:      # to itself: a small loop
        parts.append(f'<path class="line" d="M{x1:.0f},{y - 6:.0f} h34 v12 h-30" fill="none" '
                     f'marker-end="url(#{prefix}-ah-{marker})"/>')
        tx, anchor = x1 + 40, "start"
    else:
        end = x2 - 2 if x2 > x1 else x2 + 2
        parts.append(f'<line class="line" x1="{x1:.0f}" y1="{y + 4:.0f}" x2="{end:.0f}" y2="{y + 4:.0f}" '
                     f'marker-end="url(#{prefix}-ah-{marker})"/>')
        tx, anchor = (lo + hi) / 2, "middle"
    label = f'<tspan class="lbl">{clean(main)}</tspan>'
    if small:
        label += f'<tspan class="small" dx="6">{clean(small)}</tspan>'
    parts.append(f'<text x="{tx:.0f}" y="{y - 2:.0f}" text-anchor="{anchor}">{label}</text>')
    if a.step:      # just past the arrowhead: the party whose expectation it met
        bx = x2 + (13 if x2 >= x1 else -13)
        parts.append(f'<g class="step"><circle cx="{bx:.0f}" cy="{y - 6:.0f}" r="8"/>'
                     f'<text x="{bx:.0f}" y="{y - 2:.0f}" text-anchor="middle">{clean(a.step)}</text></g>')
    if a.translated_from is not None:
        parts.append(_nat_marker(a, index, ladder, xs, y, placed))
    parts.append("</g>")
    return "".join(parts)


def _nat_marker(a: Arrow, index: int, ladder: Ladder, xs: dict[str, float], y: float, placed: list) -> str:
    """A dotted bracket in the gutter from the message before the NAT to this one, and a badge."""
    assert a.translated_from is not None
    before = ladder.rows[a.translated_from]
    y0 = next((yy for kind, row, yy in placed if kind == "row" and row is before), y)
    x = GUTTER - 4
    changed = ", ".join(a.rewritten) or "addresses only"
    bx = max(xs.get(a.src, GUTTER), xs.get(a.dst, GUTTER)) + 8
    return (f'<g class="natmark"><title>{clean(f"NAT: {before.src_addr} -> {a.src_addr}; rewritten: {changed}")}'
            f'</title><path d="M{x},{y0 + 4:.0f} h4 V{y + 4:.0f} h-4" fill="none"/>'
            f'<rect x="{bx:.0f}" y="{y - 4:.0f}" width="34" height="15" rx="3"/>'
            f'<text x="{bx + 17:.0f}" y="{y + 7:.0f}" text-anchor="middle">NAT</text></g>')


def _note(ladder: Ladder, note: Note, xs: dict[str, float], y: float, width: int, spacing: int) -> str:
    offset = format_offset(note.time - ladder.t0)
    tip = clean(note.text + (f"\n\n{note.detail}" if note.detail else ""))
    if note.kind == "failure":
        first = " ".join(line.strip() for line in note.detail.strip().splitlines())
        x0, w = GUTTER - 2, width - GUTTER - 6
        return (f'<g class="failnote" tabindex="0" data-label="{clean(note.text)}" data-time="{offset}">'
                f'<title>{tip}</title>'
                f'<rect x="{x0}" y="{y - FAIL_ROW / 2 + 3:.0f}" width="{w}" height="{FAIL_ROW - 6}" rx="4"/>'
                f'<text class="t" x="{GUTTER - 10}" y="{y + 4:.0f}" text-anchor="end">{offset}</text>'
                f'<text class="failtitle" x="{x0 + 10}" y="{y - 3:.0f}">✗ {clean(_cut(note.text, w - 20, 1.05))}</text>'
                f'<text class="faildetail" x="{x0 + 10}" y="{y + 13:.0f}">{clean(_cut(first, w - 20))}</text></g>')
    if note.kind == "cut":
        return (f'<text class="gap" x="{width / 2:.0f}" y="{y + 4:.0f}" text-anchor="middle">'
                f"{clean(note.text)}</text>")
    x = xs.get(note.lane, GUTTER + (width - GUTTER) / 2)
    text = note.text + (f": {note.detail}" if note.detail else "")
    w = min(spacing * 1.6, len(text) * CHAR * 0.9 + 20)
    return (f'<g class="note"><title>{tip}</title>'
            f'<text class="t" x="{GUTTER - 10}" y="{y + 4:.0f}" text-anchor="end">{offset}</text>'
            f'<rect x="{x - w / 2:.0f}" y="{y - 9:.0f}" width="{w:.0f}" height="18" rx="9"/>'
            f'<text x="{x:.0f}" y="{y + 4:.0f}" text-anchor="middle">{clean(_cut(text, w - 12, 0.9))}</text></g>')


def render_html(ladder: Ladder) -> str:
    """A standalone page: the ladder, and a side panel that shows the message clicked."""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{clean(ladder.title or 'SIP ladder')}</title><style>{assets.PAGE_CSS}</style></head>"
            f"<body class=\"viewer\"><h1>{clean(ladder.title or 'SIP ladder')}</h1>"
            f"{ladder_box(ladder, 'l')}<script>{assets.PAGE_JS}</script></body></html>\n")


def ladder_box(ladder: Ladder, prefix: str) -> str:
    """The ladder with its message panel, as an HTML fragment (used by the viewer and index.html)."""
    count = len(ladder.arrows)
    return (f'<div class="ladder-box" data-prefix="{clean(prefix)}">'
            f'<div class="ladder-scroll">{render_svg(ladder, prefix, standalone=False)}</div>'
            f'<aside class="panel"><div class="panel-head">Message</div>'
            f'<div class="panel-meta">Click an arrow ({count} messages) to see the whole message here.</div>'
            f'<pre class="panel-text"></pre></aside></div>')
