"""RefPhoneDriver: launches the reference phone console under pexpect and controls it.

One background thread is the only reader of the console's output: it turns EVENT lines into
PhoneEvents and hands OK/ERR replies to the command that is waiting for them, so events are
never lost while a command is in flight. Commands are serialised (one reply per command).
"""

from __future__ import annotations

import collections
import importlib.util
import ipaddress
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import pexpect

from ..driver import DriverError, PhoneDriver, PhoneEvent, ProgramMissing, check_transport
from ..tls import make_certificates
from . import protocol
from .zygote import Zygote, ZygoteError

_REPO_ROOT = Path(__file__).resolve().parents[3]   # the directory holding the referee package
_TAIL_LINES = 40
_CONSOLE = ("-m", "referee.dut.refphone")          # the reference phone's console, as `python -m`


class RefPhoneDriver(PhoneDriver):
    """The built-in reference phone (pjsip 2.15 via pjsua2) as a DUT."""

    name = "refphone"
    capabilities = frozenset({
        "transferee", "transferor", "attended", "target", "replaces",
        "refer_sub", "decline_refer", "manual_answer",
    })
    # pjsua2 creates UDP, TCP and TLS transports (TLS with a run-time test certificate,
    # verifying neither the peers' certificates nor asking for one)
    transports = ("udp", "tcp", "tls")

    def __init__(self, host: str = "127.0.0.1", port: int = 0, user: str = "dut",
                 answer: str = "auto", refer: str = "accept", transport: str = "udp",
                 *, certificates=None, log_file: str | None = None, command_timeout: float = 5.0,
                 control_port: int | None = None, control_auth: tuple[str, str, str] | None = None) -> None:
        super().__init__(host, port, user, transport)
        for what, value, allowed in (
            ("answer", answer, ("auto", "manual", "busy", "decline", "noanswer")),
            ("refer", refer, ("accept", "decline")),
            ("transport", transport, ("udp", "tcp", "tls")),
        ):
            if value not in allowed:
                raise DriverError(f"refphone: {what} must be one of {', '.join(allowed)}, got {value!r}")
        try:
            version = ipaddress.ip_address(host).version
        except ValueError:
            raise DriverError(f"refphone: host must be an IPv4 address literal, got {host!r}") from None
        if version != 4:
            raise DriverError(f"refphone: host {host}: IPv6 is not supported by the pjsua2 build "
                              "(PJ_HAS_IPV6=0); use an IPv4 address")
        self.answer_mode = answer
        self.refer_policy = refer
        self.certificates = certificates     # TestCertificates for TLS (made in start() if None)
        self._cert_dir: str | None = None
        self.log_file = log_file
        self.command_timeout = command_timeout
        # the phone's call-control HTTP API (control.py): None = not served; 0 = a free port,
        # the real one is known once started; control_auth = (basic|digest, user, password)
        self.control_port = control_port
        self.control_auth = control_auth
        self._child: pexpect.spawn | None = None
        self._reader: threading.Thread | None = None
        self._cond = threading.Condition()          # guards everything below
        self._events: list[PhoneEvent] = []
        self._unconsumed: list[PhoneEvent] = []
        self._replies: collections.deque[protocol.Line] = collections.deque()
        self._stale_replies = 0                     # replies still owed to timed-out commands
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._ready: protocol.Line | None = None
        self._eof = False
        self._stopping = False
        self._cmd_lock = threading.Lock()
        self._proc_lock = threading.Lock()

    # -- addresses -------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    # -- life cycle ------------------------------------------------------------------------
    def __enter__(self) -> "RefPhoneDriver":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @classmethod
    def find_program(cls) -> str:
        """The reference phone is this Python with the pjsua2 module (PyPI pjsua2-python)."""
        if importlib.util.find_spec("pjsua2") is None:
            raise ProgramMissing(f"refphone: the Python module pjsua2 is not installed for {sys.executable}; "
                                 f"install it: run ./install.sh (it installs pjsua2-python into .venv)")
        return sys.executable

    def _console_command(self) -> tuple[str, list[str]]:
        """Program and arguments of the console to launch (ConsoleDriver launches another one)."""
        argv = [*_CONSOLE, "--host", self.host, "--port", str(self.port),
                "--user", self.user, "--transport", self.transport,
                "--answer", self.answer_mode, "--refer", self.refer_policy]
        if self.transport == "tls":
            argv += ["--tls-cert", str(self.certificates.cert_file), "--tls-key", str(self.certificates.key_file)]
        if self.log_file:
            argv += ["--log-file", self.log_file]
        if self.control_port is not None:
            argv += ["--control-port", str(self.control_port)]
            if self.control_auth is not None:
                scheme, user, password = self.control_auth
                argv += ["--control-auth", scheme, "--control-user", user, "--control-password", password]
        return sys.executable, argv

    def _spawn(self, program: str, argv: list[str], env: dict[str, str]):
        """The console process under pexpect: forked by this process's zygote when it is the
        reference phone's own console (zygote.py), else launched."""
        if program == sys.executable and argv[:2] == list(_CONSOLE):
            return Zygote.get(env).spawn(argv[2:])
        child = pexpect.spawn(program, argv, env=env, echo=False, encoding="utf-8", codec_errors="replace",
                              timeout=None)
        # pexpect waits 50 ms before every send, for terminal programs that are not yet
        # reading; the console reads whole lines whenever they come
        child.delaybeforesend = None
        return child

    def _check_transport(self) -> None:
        check_transport(self.name, self.transport, self.transports, self.transport_limits)

    def start(self, timeout: float = 15.0) -> None:
        if self._child is not None:
            raise DriverError(f"refphone: already started (pid {self._child.pid})")
        self._check_transport()
        self.find_program()
        if self.transport == "tls" and self.certificates is None:
            self._cert_dir = tempfile.mkdtemp(prefix=f"referee-{self.name}-tls-")
            self.certificates = make_certificates(Path(self._cert_dir))
        program, argv = self._console_command()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO_ROOT), env.get("PYTHONPATH")) if p)
        try:
            child = self._spawn(program, argv, env)
        except (OSError, pexpect.ExceptionPexpect, ZygoteError) as exc:
            shown = ["********" if i and argv[i - 1] == "--control-password" else a for i, a in enumerate(argv)]
            raise DriverError(f"refphone: cannot launch {program} {' '.join(shown)}: {exc}") from None
        with self._cond:
            self._child = child
            self._eof = False
            self._stopping = False
            self._ready = None
        self._reader = threading.Thread(target=self._read_loop, name=f"refphone-{child.pid}", daemon=True)
        self._reader.start()

        deadline = time.monotonic() + timeout
        with self._cond:
            while self._ready is None and not self._eof and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            ready, eof = self._ready, self._eof
        if ready is None:
            why = "exited" if eof else f"did not print READY within {timeout:g}s"
            tail = self._tail_text()
            self.stop()
            raise DriverError(f"refphone: console {why}; last output:\n{tail}")
        if ready.kind == "err":
            self.stop()
            raise DriverError(f"refphone: could not start: {ready.text}")
        self.port = int(ready.fields["port"])

    def stop(self, timeout: float = 5.0) -> None:
        try:
            self._stop_child(timeout)
        finally:
            if self._cert_dir is not None:       # certificates this driver made for itself
                shutil.rmtree(self._cert_dir, ignore_errors=True)
                self._cert_dir, self.certificates = None, None

    def _stop_child(self, timeout: float) -> None:
        child = self._child
        if child is None:
            return
        with self._cond:
            self._stopping = True
        try:
            if not self._eof and self._isalive():
                try:
                    child.sendline("quit")
                except OSError:
                    pass
                self._wait_exit(timeout)
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if not self._isalive():
                    break
                try:
                    child.kill(sig)
                except OSError:
                    pass
                self._wait_exit(1.0)
        finally:
            if self._reader is not None:
                self._reader.join(2.0)
            with self._proc_lock:
                try:
                    if not child.isalive() and hasattr(child, "ptyproc"):
                        child.ptyproc.delayafterclose = 0   # nothing left to wait for
                    child.close(force=True)     # closes the pty and reaps the process
                except Exception:  # noqa: BLE001 - stop() never raises
                    pass
            self._child = None
            self._reader = None

    def alive(self) -> bool:
        return self._child is not None and self._isalive()

    def _isalive(self) -> bool:
        child = self._child
        if child is None:
            return False
        with self._proc_lock:
            try:
                return bool(child.isalive())
            except Exception:  # noqa: BLE001 - an already closed child is simply dead
                return False

    def _wait_exit(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self._isalive() and time.monotonic() < deadline:
            time.sleep(0.01)

    # -- output reader -----------------------------------------------------------------------
    def _read_loop(self) -> None:
        child = self._child
        assert child is not None
        while True:
            try:
                index = child.expect_exact(["\n", pexpect.EOF, pexpect.TIMEOUT], timeout=0.2)
            except Exception as exc:  # noqa: BLE001 - pty closed under us: treat as EOF
                with self._cond:
                    self._tail.append(f"[reader stopped: {exc}]")
                index = 1
            if index == 0:
                self._take_line(child.before)
                continue
            if index == 1:
                rest = child.before if isinstance(child.before, str) else ""
                if rest.strip():
                    self._take_line(rest)
                with self._cond:
                    self._eof = True
                    self._cond.notify_all()
                return
            # No output for a while: give up only once stop() has been called and the
            # process is gone (its pty may stay open through a leftover grandchild).
            if self._stopping and not self._isalive():
                with self._cond:
                    self._eof = True
                    self._cond.notify_all()
                return

    def _take_line(self, raw: str) -> None:
        line = raw.rstrip("\r\n")
        with self._cond:
            self._tail.append(line)
        try:
            parsed = protocol.parse_line(line)
        except protocol.ProtocolError as exc:
            parsed = protocol.Line("event", event="log", fields={"text": f"unparsable console line: {exc}"})
        if parsed is None:
            return
        with self._cond:
            if parsed.kind == "control":
                self.control_port = int(parsed.fields["port"])
            elif parsed.kind == "event":
                event = PhoneEvent(parsed.event, parsed.fields)
                self._events.append(event)
                self._unconsumed.append(event)
            elif self._ready is None and (parsed.kind == "ready" or parsed.kind == "err"):
                self._ready = parsed
            elif self._stale_replies:
                self._stale_replies -= 1
            else:
                self._replies.append(parsed)
            self._cond.notify_all()

    def _tail_text(self) -> str:
        with self._cond:
            lines = list(self._tail)
        return "\n".join(f"  | {line}" for line in lines) if lines else "  | (no output)"

    def _died(self, doing: str) -> DriverError:
        self._wait_exit(0.5)
        child = self._child
        if child is not None and not self._isalive():
            if child.signalstatus is not None:
                status = f"killed by signal {child.signalstatus}"
            else:
                status = f"exit status {child.exitstatus}"
        else:
            status = "output closed"
        return DriverError(f"refphone: console died ({status}) while {doing}; last output:\n{self._tail_text()}")

    # -- commands --------------------------------------------------------------------------
    def _command(self, line: str, timeout: float | None = None) -> dict[str, str]:
        """Send one command line and return the fields of its OK reply (ERR -> DriverError)."""
        timeout = self.command_timeout if timeout is None else timeout
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in line):
            # the console reads a terminal: control characters would edit or signal, not pass
            raise DriverError(f"refphone: command {line!r} contains control characters")
        with self._cmd_lock:
            child = self._child
            if child is None:
                raise DriverError(f"refphone: not started (command {line!r})")
            with self._cond:
                dead = self._eof
                self._replies.clear()
            if dead:
                raise self._died(f"sending {line!r}")
            try:
                child.sendline(line)
            except OSError as exc:
                raise DriverError(f"refphone: cannot send {line!r}: {exc}") from None
            deadline = time.monotonic() + timeout
            with self._cond:
                while not self._replies and not self._eof and time.monotonic() < deadline:
                    self._cond.wait(deadline - time.monotonic())
                reply = self._replies.popleft() if self._replies else None
                dead = self._eof
                if reply is None and not dead:
                    self._stale_replies += 1     # its late reply must not answer the next command
            if reply is None and dead:
                raise self._died(f"waiting for the reply to {line!r}")
            if reply is None:
                raise DriverError(f"refphone: no reply to {line!r} within {timeout:g}s; "
                                  f"last output:\n{self._tail_text()}")
        if reply.kind == "err":
            raise DriverError(f"refphone: {line!r} refused: {reply.text}")
        return reply.fields

    def set_answer_mode(self, mode: str) -> None:
        self._command(f"answer-mode {mode}")
        self.answer_mode = mode

    def set_refer_policy(self, policy: str) -> None:
        self._command(f"refer-policy {policy}")
        self.refer_policy = policy

    def dial(self, uri: str) -> str:
        return self._command(f"dial {_arg(uri)}")["call"]

    def answer(self, call: str | None = None) -> None:
        self._command(_join("answer", call))

    def reject(self, code: int = 486, call: str | None = None) -> None:
        self._command(_join("reject", str(int(code)), call))

    def hangup(self, call: str | None = None) -> None:
        self._command(_join("hangup", call))

    def hold(self, call: str | None = None) -> None:
        self._command(_join("hold", call))

    def transfer(self, target_uri: str, call: str | None = None, *, refer_sub: bool = True) -> None:
        """Blind transfer; refer_sub=False sends `Refer-Sub: false` (RFC 4488)."""
        line = f"xfer {_arg(call or self._latest_call())} {_arg(target_uri)}"
        self._command(line if refer_sub else line + " norefersub")

    def transfer_attended(self, call: str, consult_call: str) -> None:
        self._command(f"axfer {_arg(call)} {_arg(consult_call)}")

    def calls(self) -> dict[str, str]:
        """Active calls as {handle: state} (state: calling, incoming, early, confirmed, ...)."""
        listing = self._command("calls").get("calls", "")
        return dict(item.split("=", 1) for item in listing.split())

    def _latest_call(self) -> str:
        calls = self.calls()
        confirmed = [h for h, state in calls.items() if state == "confirmed"]
        if not confirmed:
            raise DriverError(f"refphone: no confirmed call to transfer (calls: {calls or 'none'})")
        return max(confirmed, key=int)

    # -- events ------------------------------------------------------------------------------
    def wait_event(self, kind: str, timeout: float = 5.0, **match: str) -> PhoneEvent:
        wanted = {k: str(v) for k, v in match.items()}
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self._unconsumed:
                    if event.kind == kind and all(event.fields.get(k) == v for k, v in wanted.items()):
                        self._unconsumed.remove(event)
                        return event
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    break
                self._cond.wait(remaining)
            seen = ", ".join(_describe(e) for e in self._unconsumed) or "nothing"
        what = f"{kind} {wanted}" if wanted else kind
        if self._child is None:
            raise DriverError(f"refphone: not running (waiting for event {what}; unconsumed events: {seen})")
        if self._eof and not self._stopping:
            raise self._died(f"waiting for event {what} (unconsumed events: {seen})")
        raise DriverError(f"refphone: no event {what} within {timeout:g}s; unconsumed events: {seen}")

    def events(self) -> list[PhoneEvent]:
        with self._cond:
            return list(self._events)


def _arg(value: str) -> str:
    """One command argument; the console splits lines with shlex."""
    return shlex.quote(value)


def _join(*parts: str | None) -> str:
    return " ".join(_arg(p) if i else p for i, p in enumerate(parts) if p is not None)


def _describe(event: PhoneEvent) -> str:
    return f"{event.kind}({protocol.format_fields(dict(event.fields))})"
