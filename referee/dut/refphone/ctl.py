"""`python -m referee.dut.refphone.ctl`: ask a running reference phone to act, over its HTTP API.

    python -m referee.dut.refphone.ctl --port N [--host 127.0.0.1] [--auth basic|digest
        --user U --password P] [--timeout 5] ACTION [ARGS...]

    dial URI                        answer [CALL]          reject [CODE] [CALL]
    hangup [CALL]                   hold [CALL]            transfer URI [CALL]
    attended-transfer CALL CONSULT  answer-mode MODE       refer-policy POLICY      calls

Prints the phone's answer (e.g. `call=1`) and exits 0; a refused action exits 1 with the
phone's reason on stderr; no answer at all exits 2. The phone serves the API when started with
`--control-port` (see control.py). This is the command-line form of control a profile's
`driver = "command"` uses.
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse

from ..httpcall import HttpCallError, send

#: action -> the names of its positional arguments (those after '?' are optional)
USAGE = {
    "dial": ["uri"],
    "answer": ["call?"],
    "reject": ["code?", "call?"],
    "hangup": ["call?"],
    "hold": ["call?"],
    "transfer": ["uri", "call?"],
    "attended-transfer": ["call", "consult"],
    "answer-mode": ["mode"],
    "refer-policy": ["policy"],
    "calls": [],
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m referee.dut.refphone.ctl",
                                 description="ask a running reference phone to act, over its HTTP API")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True, help="the phone's --control-port")
    ap.add_argument("--auth", choices=("none", "basic", "digest"), default="none")
    ap.add_argument("--user", default="")
    ap.add_argument("--password", default="")
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer (default 5)")
    ap.add_argument("action", choices=sorted(USAGE))
    ap.add_argument("args", nargs="*")
    args = ap.parse_args(argv)
    names = USAGE[args.action]
    least = sum(1 for n in names if not n.endswith("?"))
    if not least <= len(args.args) <= len(names):
        usage = " ".join(f"[{n[:-1].upper()}]" if n.endswith("?") else n.upper() for n in names)
        ap.error(f"usage: {args.action} {usage}".rstrip())
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    params = {name.rstrip("?"): value for name, value in zip(USAGE[args.action], args.args)}
    url = f"http://{args.host}:{args.port}/api/{args.action}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        answer = send("GET", url, auth=args.auth, username=args.user, password=args.password,
                      timeout=args.timeout)
    except HttpCallError as exc:
        print(f"error: no answer from the phone at {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    if not answer.ok:
        print(f"error: {args.action}: {answer.status} {answer.reason}: {answer.text.strip()}", file=sys.stderr)
        return 1
    sys.stdout.write(answer.text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
