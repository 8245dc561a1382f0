"""`referee ladder`: draw the SIP ladder of any pcap/pcapng file, as SVG or as an HTML page.

    referee ladder capture.pcap -o ladder.svg
    referee ladder capture.pcapng -o ladder.html --trace reports/test_x/trace.json

One lane per ip:port (with --trace: the test's parties by role name, the DUT by its address).
Exit 0 on success, 2 with one line on stderr when the input cannot be drawn.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

from .ladder import ladder_from_pcap
from .ladder_render import render_html, render_svg

FORMATS = (".svg", ".html", ".htm")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="referee ladder",
                                     description="Draw the SIP ladder diagram of a pcap/pcapng file.")
    parser.add_argument("capture", help="pcap or pcapng file (any capture, not only referee's)")
    parser.add_argument("-o", "--output", help="output file, .svg or .html (default: the capture's name with .svg)")
    parser.add_argument("--trace", help="trace.json of the same test: name the lanes after its parties")
    parser.add_argument("--title", help="title of the diagram (default: the capture's file name)")
    args = parser.parse_args(argv)
    capture = pathlib.Path(args.capture)
    output = pathlib.Path(args.output) if args.output else capture.with_suffix(".svg")
    if output.suffix.lower() not in FORMATS:
        return _fail(f"output must end in .svg or .html, got {str(output)!r}")
    trace = None
    if args.trace:
        try:
            trace = json.loads(pathlib.Path(args.trace).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return _fail(f"cannot read trace {args.trace}: {exc}")
        if not isinstance(trace, dict):
            return _fail(f"{args.trace} is not a referee trace (expected a JSON object)")
    try:
        ladder = _read(capture, trace, args.title)
    except _Unreadable as exc:
        return _fail(str(exc))
    text = render_html(ladder) if output.suffix.lower() != ".svg" else render_svg(ladder)
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        return _fail(f"cannot write {output}: {exc.strerror or exc}")
    print(f"{output}: {len(ladder.arrows)} messages, {len(ladder.lanes)} lanes")
    return 0


class _Unreadable(Exception):
    pass


def _read(capture: pathlib.Path, trace: dict | None, title: str | None):
    from referee.wire import WireError
    if not capture.exists():
        raise _Unreadable(f"no such file: {capture}")
    if not capture.is_file():
        raise _Unreadable(f"not a file: {capture}")
    try:
        return ladder_from_pcap(capture, trace=trace, title=title)
    except WireError as exc:
        raise _Unreadable(str(exc)) from None
    except OSError as exc:
        raise _Unreadable(f"cannot read {capture}: {exc.strerror or exc}") from None
    except Exception as exc:     # scapy's reader on a damaged file
        raise _Unreadable(f"{capture} is not a readable pcap or pcapng file ({type(exc).__name__}: {exc})") from None


def _fail(message: str) -> int:
    print(f"referee ladder: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
