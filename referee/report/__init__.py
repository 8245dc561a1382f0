"""referee.report — what a run leaves for people and tools.

    ladder.py         ladder (sequence) diagrams of one test: model and builders (trace, wire, pcap)
    ladder_render.py  ladders as SVG and as a one-page HTML viewer
    results.py        per-test records and verdicts, summaries by role and RFC, results.json
    certification.py  certification.xml (JUnit, written with junit-xml)
    html.py           index.html (self-contained)
    cli_ladder.py     `referee ladder capture.pcap -o ladder.svg|html`

The pytest side (hooks that feed these) is fixtures/reporting.py.
"""

from .ladder import (Arrow, Ladder, Lane, Note, ladder_for_test, ladder_from_pcap, ladder_from_trace,
                     ladder_from_wire)
from .ladder_render import render_html, render_svg

__all__ = ["Arrow", "Ladder", "Lane", "Note", "ladder_for_test", "ladder_from_pcap", "ladder_from_trace",
           "ladder_from_wire", "render_html", "render_svg"]
