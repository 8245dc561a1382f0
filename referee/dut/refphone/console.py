"""Line-oriented console of the reference phone (see protocol.py for the line format).

    python -m referee.dut.refphone --host 127.0.0.1 --port 0 [--user dut] [--transport udp|tcp|tls]
        [--tls-cert PEM --tls-key PEM] [--answer auto|manual|busy|decline|noanswer]
        [--refer accept|decline] [--log-file PATH]
        [--control-port N [--control-auth none|basic|digest --control-user U --control-password P]]

With --control-port the phone also serves its call-control HTTP API (control.py) on that port
of --host (0: a free one) and prints `CONTROL <host> <port>` before `READY`.

Commands, one per line, each answered by exactly one `OK ...` or `ERR <reason>` line:
    dial <uri>                  -> OK call=<id>
    answer [call]               answer a ringing incoming call (default: the latest one)
    reject <code> [call]        reject a ringing incoming call with a 3xx-6xx final response
    hangup [call]               end (or cancel) a call (default: the latest one)
    hold [call]                 put a confirmed call on hold (re-INVITE, sendonly)
    xfer <call> <uri> [norefersub]
                                blind transfer: REFER with Refer-To <uri> (norefersub: add
                                Refer-Sub: false, RFC 4488)
    axfer <call> <consult-call> attended transfer: REFER with Refer-To consult peer + Replaces
    answer-mode <mode>          auto | manual | busy | decline | noanswer
    refer-policy <policy>       accept | decline (decline answers REFER with 603)
    calls                       -> OK calls='<id>=<state> ...'
    quit                        -> OK, then hang up every call and exit
"""

from __future__ import annotations

import argparse
import os
import select
import shlex
import signal
import sys
from typing import Callable, TextIO

from . import protocol
from .phone import (ANSWER_MODES, REFER_POLICIES, TRANSPORTS, Phone, PhoneConfig, PhoneError,
                    describe_error)

POLL_MS = 10          # longest time pjsip may block before stdin is looked at again
SHUTDOWN_S = 3.0      # how long hung-up calls get to finish their BYE transactions


class Output:
    """Protocol writer. Owns a private copy of the original stdout, because fd 1 itself is
    pointed at stderr so that native library chatter cannot corrupt the protocol."""

    def __init__(self) -> None:
        sys.stdout.flush()
        self._stream: TextIO = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self.broken = False

    def line(self, text: str) -> None:
        if self.broken:
            return
        try:
            self._stream.write(text + "\n")
            self._stream.flush()
        except OSError:
            self.broken = True   # the reader went away; the main loop will stop

    def event(self, kind: str, fields: dict[str, object]) -> None:
        self.line(protocol.format_event(kind, fields))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m referee.dut.refphone",
                                 description="referee reference phone (pjsip) with a line console")
    ap.add_argument("--host", default="127.0.0.1", help="IP address to listen on (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=0, help="SIP port; 0 picks a free one (default 0)")
    ap.add_argument("--user", default="dut", help="user part of our own URI (default dut)")
    ap.add_argument("--transport", choices=TRANSPORTS, default="udp")
    ap.add_argument("--tls-cert", default="", help="TLS: certificate (PEM) of our TLS server")
    ap.add_argument("--tls-key", default="", help="TLS: its private key (PEM)")
    ap.add_argument("--answer", choices=ANSWER_MODES, default="auto")
    ap.add_argument("--refer", choices=REFER_POLICIES, default="accept")
    ap.add_argument("--log-file", default="", help="write the pjsip log (with SIP messages) here")
    ap.add_argument("--control-port", type=int, default=None,
                    help="also serve the call-control HTTP API on this port (0: a free one)")
    ap.add_argument("--control-auth", choices=("none", "basic", "digest"), default="none",
                    help="authentication the HTTP API asks for (default none)")
    ap.add_argument("--control-user", default="", help="HTTP API user name")
    ap.add_argument("--control-password", default="", help="HTTP API password")
    args = ap.parse_args(argv)
    if args.control_auth != "none" and not (args.control_user and args.control_password):
        ap.error("--control-auth basic|digest needs --control-user and --control-password")
    return args


class Console:
    """Dispatches command lines to the phone and formats the replies."""

    def __init__(self, phone: Phone) -> None:
        self.phone = phone
        self.quitting = False
        self._commands: dict[str, tuple[Callable[[list[str]], dict[str, object]], int, int, str]] = {
            "dial": (self._dial, 1, 1, "dial <uri>"),
            "answer": (self._answer, 0, 1, "answer [call]"),
            "reject": (self._reject, 1, 2, "reject <code> [call]"),
            "hangup": (self._hangup, 0, 1, "hangup [call]"),
            "hold": (self._hold, 0, 1, "hold [call]"),
            "xfer": (self._xfer, 2, 3, "xfer <call> <uri> [norefersub]"),
            "axfer": (self._axfer, 2, 2, "axfer <call> <consult-call>"),
            "answer-mode": (self._answer_mode, 1, 1, "answer-mode <mode>"),
            "refer-policy": (self._refer_policy, 1, 1, "refer-policy accept|decline"),
            "calls": (self._calls, 0, 0, "calls"),
            "quit": (self._quit, 0, 0, "quit"),
        }

    def handle(self, line: str) -> str:
        """Run one command line; returns the single reply line."""
        try:
            words = shlex.split(line)
        except ValueError as exc:
            return protocol.format_err(f"cannot split command {line!r}: {exc}")
        if not words:
            return protocol.format_err("empty command")
        name, args = words[0], words[1:]
        entry = self._commands.get(name)
        if entry is None:
            return protocol.format_err(f"unknown command {name!r} (known: {', '.join(self._commands)})")
        func, least, most, usage = entry
        if not least <= len(args) <= most:
            return protocol.format_err(f"usage: {usage} (got {len(args)} argument(s))")
        try:
            return protocol.format_ok(func(args))
        except PhoneError as exc:
            return protocol.format_err(str(exc))
        except Exception as exc:  # noqa: BLE001 - pjsua2 errors and bugs: report, keep running
            return protocol.format_err(f"{name} failed: {describe_error(exc)}")

    def _dial(self, args: list[str]) -> dict[str, object]:
        return {"call": self.phone.dial(args[0])}

    def _answer(self, args: list[str]) -> dict[str, object]:
        return {"call": self.phone.answer(args[0] if args else None)}

    def _reject(self, args: list[str]) -> dict[str, object]:
        if not args[0].isdigit():
            raise PhoneError(f"reject code must be a number, got {args[0]!r}")
        return {"call": self.phone.reject(int(args[0]), args[1] if len(args) > 1 else None)}

    def _hangup(self, args: list[str]) -> dict[str, object]:
        return {"call": self.phone.hangup(args[0] if args else None)}

    def _hold(self, args: list[str]) -> dict[str, object]:
        return {"call": self.phone.hold(args[0] if args else None)}

    def _xfer(self, args: list[str]) -> dict[str, object]:
        if len(args) == 3 and args[2] != "norefersub":
            raise PhoneError(f"xfer option must be 'norefersub', got {args[2]!r}")
        return {"call": self.phone.xfer(args[0], args[1], refer_sub=len(args) < 3)}

    def _axfer(self, args: list[str]) -> dict[str, object]:
        return {"call": self.phone.axfer(args[0], args[1])}

    def _answer_mode(self, args: list[str]) -> dict[str, object]:
        self.phone.set_answer_mode(args[0])
        return {"answer": args[0]}

    def _refer_policy(self, args: list[str]) -> dict[str, object]:
        self.phone.set_refer_policy(args[0])
        return {"refer": args[0]}

    def _calls(self, args: list[str]) -> dict[str, object]:
        calls = self.phone.list_calls()
        return {"count": len(calls), "calls": " ".join(f"{h}={state}" for h, state, _ in calls)}

    def _quit(self, args: list[str]) -> dict[str, object]:
        self.quitting = True
        return {}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Output()
    config = PhoneConfig(host=args.host, port=args.port, user=args.user, transport=args.transport,
                         tls_cert=args.tls_cert, tls_key=args.tls_key, answer=args.answer, refer=args.refer, log_file=args.log_file)
    try:
        phone = Phone(config, out.event)
        host, port = phone.start()
    except PhoneError as exc:
        out.line(protocol.format_err(str(exc)))
        return 2

    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)

    console = Console(phone)
    control = None
    if args.control_port is not None:
        from .control import ControlServer
        try:
            control = ControlServer(console, host, args.control_port, args.control_auth, args.control_user,
                                    args.control_password)
        except OSError as exc:
            out.line(protocol.format_err(f"cannot serve the control API on {host} port {args.control_port}: {exc}"))
            phone.shutdown(SHUTDOWN_S)
            os._exit(2)
        out.line(f"CONTROL {host} {control.port}")
    out.line(f"READY {host} {port}")
    stdin_fd = sys.stdin.fileno()
    watched = [stdin_fd] + ([control.fileno()] if control else [])
    pending = b""
    while not (stop or console.quitting or out.broken):
        phone.poll(POLL_MS)
        readable, _, _ = select.select(watched, [], [], 0)
        if control is not None and control.fileno() in readable:
            control.handle_one()
        if stdin_fd not in readable:
            continue
        try:
            data = os.read(stdin_fd, 65536)
        except OSError:
            data = b""
        if not data:
            break       # stdin EOF: the controller is gone
        pending += data
        while b"\n" in pending and not console.quitting:
            raw, pending = pending.split(b"\n", 1)
            line = raw.decode("utf-8", "replace").strip()
            if line:
                out.line(console.handle(line))

    if control is not None:
        control.close()
    phone.shutdown(SHUTDOWN_S)
    sys.stderr.flush()
    # pjsua2's SWIG objects must not be finalised after libDestroy (that can crash the
    # interpreter at exit); the library is down and everything is flushed, so leave now.
    os._exit(0)
