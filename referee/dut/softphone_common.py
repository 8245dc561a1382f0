"""Shared machinery of the CLI softphone drivers (baresip, linphonec, twinkle).

A `ConsolePhone` launches one program under pexpect in a fresh scratch HOME, reads its console
on a background thread (and, for products that log SIP to a file, tails that file on another),
and keeps the program's last output lines for error messages.

Events come from the SIP messages the program itself prints (baresip's `-s` console trace,
linphonec's and twinkle's log files): a small dialog tracker turns received/sent INVITE, BYE,
REFER, NOTIFY and their responses into PhoneEvents, the same way for every product. The
console is used for what only it knows: readiness, command replies, and the product's own
name for a call (a line or call number), which the product modules bind to our calls.
"""

from __future__ import annotations

import abc
import collections
import dataclasses
import os
import random
import re
import shutil
import signal
import socket
import ssl
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import pexpect

from referee.sip import SipParseError, frame_stream

from .driver import DriverError, PhoneDriver, PhoneEvent, check_transport
from .tls import make_certificates

ANSWER_MODES = ("auto", "manual", "busy", "decline", "noanswer")
TAIL_LINES = 40

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][A-Za-z0-9]|\x1b[=>78]")
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_TO_TAG = re.compile(r";\s*tag\s*=", re.IGNORECASE)
_SIPFRAG = re.compile(r"^SIP/2\.0\s+(\d{3})\s*(.*)$")


# -- small helpers ---------------------------------------------------------------------------
def clean_text(raw: str) -> str:
    """What a terminal would show of one output line: the last carriage-return segment,
    without ANSI escapes or control characters."""
    raw = raw.rstrip("\r")
    visible = raw.split("\r")[-1]
    return _CTRL.sub("", _ANSI.sub("", visible)).rstrip()


def bare_uri(value: str) -> str:
    """The URI inside a name-addr (`"Bob" <sip:bob@h>;tag=x` -> `sip:bob@h`)."""
    m = re.search(r"<([^>]*)>", value)
    if m:
        return m.group(1).strip()
    return value.split(";", 1)[0].strip()


def uri_key(value: str) -> str:
    """user@host of a SIP URI (no scheme, port, parameters or headers), lowercased host:
    how the products name a peer differs (with or without port), this part does not."""
    uri = bare_uri(value)
    uri = re.sub(r"^sips?:", "", uri, flags=re.IGNORECASE)
    uri = re.split(r"[;?]", uri, maxsplit=1)[0]
    user, _, hostport = uri.rpartition("@")
    if hostport.startswith("["):
        host = hostport[1:].split("]", 1)[0]
    else:
        host = hostport.split(":", 1)[0]
    return f"{user}@{host.lower()}" if user else host.lower()


def _port_free(host: str, port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on host (the OS picks it; the program binds it soon
    after, so a clash with another process is unlikely but not impossible)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if _port_free(host, port):
            return port
    raise DriverError(f"no free UDP+TCP port on {host} after 50 tries")


def free_port_block(host: str = "127.0.0.1", count: int = 8, low: int = 20000,
                    high: int = 30000) -> int:
    """An even base port p with p .. p+count-1 free for UDP on host (for RTP/RTCP ranges)."""
    for _ in range(200):
        base = random.randrange(low, high - count) & ~1
        ok = True
        for port in range(base, base + count):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise DriverError(f"no block of {count} free UDP ports on {host} in {low}-{high}")


def _options(host: str, port: int, lport: int, transport: str, branch: str) -> bytes:
    suffix = "" if transport == "udp" else f";transport={transport}"
    return (f"OPTIONS sip:{host}:{port}{suffix} SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport.upper()} {host}:{lport};branch={branch};rport\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: <sip:ping@{host}:{lport}>;tag={branch[-8:]}\r\n"
            f"To: <sip:{host}:{port}>\r\n"
            f"Call-ID: {branch}@{host}\r\n"
            f"CSeq: 1 OPTIONS\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


def sip_ping(host: str, port: int, timeout: float = 0.5, transport: str = "udp") -> str | None:
    """Send one OPTIONS over `transport` (udp, tcp or tls: a TLS peer's certificate is not
    verified); return the status line of the answer, or None."""
    branch = f"z9hG4bK-referee-ping-{random.getrandbits(32):08x}"
    deadline = time.monotonic() + timeout
    if transport == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            s.sendto(_options(host, port, s.getsockname()[1], "udp", branch), (host, port))
            while (left := deadline - time.monotonic()) > 0:
                s.settimeout(left)
                try:
                    data = s.recv(65535)
                except OSError:   # timeout, or ICMP port unreachable
                    return None
                if branch.encode() in data and data.startswith(b"SIP/2.0 "):
                    return data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
        return None
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            sock = raw
            if transport == "tls":
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                sock = ctx.wrap_socket(raw)
            sock.sendall(_options(host, port, sock.getsockname()[1], transport, branch))
            data = b""
            while (left := deadline - time.monotonic()) > 0 and b"\r\n" not in data:
                sock.settimeout(left)
                chunk = sock.recv(65535)
                if not chunk:
                    break
                data += chunk
    except (OSError, ssl.SSLError):   # refused, reset, timeout, handshake failure
        return None
    if data.startswith(b"SIP/2.0 ") and b"\r\n" in data:
        return data.split(b"\r\n", 1)[0].decode("utf-8", "replace")
    return None


_COMPACT = {"i": "call-id", "f": "from", "t": "to", "m": "contact", "v": "via", "r": "refer-to",
            "b": "referred-by", "o": "event", "c": "content-type", "l": "content-length",
            "k": "supported", "s": "subject", "u": "allow-events", "x": "session-expires"}
_START = re.compile(r"^(?:SIP/2\.0 (\d{3}) ?(.*)|([A-Za-z]+) (\S+) SIP/2\.0)$")


@dataclasses.dataclass
class TracedMessage:
    """A SIP message as a program printed it: start line, headers in order, body text.

    Printed traces are not wire bytes (line ends and Content-Length may not match), so this
    is a tolerant reading that keeps only what the event tracker needs."""

    method: str                 # request method, "" for a response
    uri: str                    # request URI, "" for a response
    status: int                 # response status, 0 for a request
    reason: str
    headers: list[tuple[str, str]]
    body: str

    @property
    def is_request(self) -> bool:
        return bool(self.method)

    def header(self, name: str) -> str | None:
        """First value of a header (any case, compact forms understood), or None."""
        key = _COMPACT.get(name.lower(), name.lower())
        for hname, value in self.headers:
            if _COMPACT.get(hname.lower(), hname.lower()) == key:
                return value
        return None


def sip_from_trace(lines: list[str]) -> TracedMessage | None:
    """Read one printed SIP message (any line ends); None if it is not one."""
    lines = [ln.rstrip("\r") for ln in lines]
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        return None
    m = _START.match(lines[0].strip())
    if not m:
        return None
    headers: list[tuple[str, str]] = []
    i = 1
    while i < len(lines) and lines[i].strip():
        line = lines[i]
        i += 1
        if line[:1] in " \t" and headers:          # folded continuation
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if not sep or not re.fullmatch(r"[A-Za-z0-9!%*_+`'~.-]+", name.strip()):
            return None
        headers.append((name.strip(), value.strip()))
    body = "\n".join(lines[i + 1:]).strip()
    if m.group(1):
        return TracedMessage("", "", int(m.group(1)), m.group(2).strip(), headers, body)
    return TracedMessage(m.group(3).upper(), m.group(4), 0, "", headers, body)


def split_stream_read(lines: list[str]) -> list[list[str]]:
    """Cut a printed stream read (TCP/TLS: an ACK and a BYE may come in one read, and the
    products log the read as one block) into its messages, by Content-Length as a stream is
    framed (referee.sip.frame_stream). What cannot be framed stays one block."""
    data = "\r\n".join(lines).encode("utf-8", "surrogateescape")
    parts: list[list[str]] = []
    while data.strip(b"\r\n \t"):
        try:
            message, rest = frame_stream(data)
        except SipParseError:
            message, rest = None, b""
        if message is None:
            parts.append(data.decode("utf-8", "surrogateescape").split("\r\n"))
            break
        parts.append(message.decode("utf-8", "surrogateescape").split("\r\n"))
        data = rest
    return parts or [lines]


def _cseq(msg: TracedMessage) -> tuple[int, str]:
    parts = (msg.header("CSeq") or "").split()
    if len(parts) == 2 and parts[0].isdigit():
        return int(parts[0]), parts[1].upper()
    return -1, ""


def _sipfrag(msg: TracedMessage) -> tuple[str, str, str]:
    """(code, reason, status line) of a message/sipfrag body, or ('', '', '')."""
    for line in msg.body.splitlines():
        m = _SIPFRAG.match(line.strip())
        if m:
            return m.group(1), m.group(2), line.strip()
        if line.strip():
            break
    return "", "", ""


@dataclasses.dataclass
class SoftCall:
    """One call (INVITE dialog) as seen in the program's SIP trace."""

    handle: str
    sip_call_id: str
    remote: str                 # bare URI of the peer (From of an incoming, To of an outgoing call)
    outgoing: bool
    invite_cseq: int
    state: str = "init"         # init | early | confirmed | ended
    ref: str | None = None      # the program's own name for the call (line / call number)
    rang: bool = False

    @property
    def key(self) -> str:
        return uri_key(self.remote)

    @property
    def live(self) -> bool:
        return self.state != "ended"


# -- the driver base -------------------------------------------------------------------------
class ConsolePhone(PhoneDriver, abc.ABC):
    """A CLI softphone under pexpect. Subclasses write the config, name the commands and
    read their own console/trace formats; this class does processes, threads and events."""

    #: executable, as the Debian package installs it (PATH, then the sbin directories)
    program: str = ""
    #: a console line (or the unfinished last line) matching this means the program is up
    ready_re: re.Pattern[str] = re.compile(r"$^")
    #: typed to quit gracefully
    quit_command: str = "quit"
    #: answer modes this product supports (subset of ANSWER_MODES)
    answer_modes: tuple[str, ...] = ("auto", "manual", "noanswer")
    #: refer policies this product supports
    refer_policies: tuple[str, ...] = ("accept",)

    def __init__(self, host: str = "127.0.0.1", port: int = 0, user: str = "dut",
                 answer: str = "auto", *, transport: str = "udp", certificates=None,
                 command_timeout: float = 5.0) -> None:
        super().__init__(host, port, user, transport)
        if answer not in self.answer_modes:
            raise DriverError(f"{self.name}: answer mode must be one of "
                              f"{', '.join(self.answer_modes)}, got {answer!r}")
        if not re.fullmatch(r"[A-Za-z0-9._-]+", user):
            raise DriverError(f"{self.name}: user must be letters, digits, '.', '_' or '-', "
                              f"got {user!r}")
        try:
            socket.inet_pton(socket.AF_INET, host)
        except OSError:
            raise DriverError(f"{self.name}: host must be an IPv4 address literal, "
                              f"got {host!r}") from None
        self.answer_mode = answer
        self.refer_policy = "accept"
        self.certificates = certificates    # TestCertificates for TLS (made under HOME if None)
        self.command_timeout = command_timeout
        self.home: Path | None = None          # the scratch HOME (config and logs live here)
        self.startup_seconds: float | None = None
        self._child: pexpect.spawn | None = None
        self._cond = threading.Condition(threading.RLock())
        self._cmd_lock = threading.Lock()
        self._reap_lock = threading.Lock()     # pexpect's isalive()/waitpid is not thread-safe
        self._threads: list[threading.Thread] = []
        self._halt = threading.Event()          # tells the file tailers to finish
        self._stopping = False
        self._exited = False
        self._exit_note = ""
        self._lines: list[str] = []
        self._partial = ""
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._events: list[PhoneEvent] = []
        self._consumed: set[int] = set()
        self._calls: list[SoftCall] = []
        self._by_sip_id: dict[str, SoftCall] = {}
        self._pending_refs: dict[str, collections.deque[str]] = collections.defaultdict(
            collections.deque)
        self._refers_in: dict[tuple[str, int], tuple[SoftCall | None, TracedMessage]] = {}
        self._refers_out: dict[tuple[str, int], SoftCall] = {}
        self._seen: set[tuple] = set()

    # -- hooks for the product modules -------------------------------------------------------
    @abc.abstractmethod
    def _write_config(self, home: Path) -> list[str]:
        """Write the program's config under `home` (the HOME it runs with); return its argv
        (without the program name)."""

    def _on_console(self, line: str, raw: str) -> None:
        """One console line (clean text, and raw with escapes). Runs on the reader thread."""

    def _trace_files(self) -> list[tuple[Path, Callable[[str | None], None]]]:
        """Files to tail (path, per-line callback, called with None when the file goes
        quiet); the callbacks run on a tailer thread."""
        return []

    def _after_start(self) -> None:
        """Runs once the program answers SIP (apply answer mode, ...)."""

    def _choose_port(self) -> int:
        """A free SIP port, for port=0."""
        return free_port(self.host)

    # -- life cycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> None:
        if self._child is not None:
            raise DriverError(f"{self.name}: already started")
        if self._stopping or self._exited:
            raise DriverError(f"{self.name}: a stopped driver cannot be restarted; make a new one")
        check_transport(self.name, self.transport, self.transports, self.transport_limits)
        exe = self.find_program()
        t0 = time.monotonic()
        deadline = t0 + timeout
        if not self.port:
            self.port = self._choose_port()
        self.home = Path(tempfile.mkdtemp(prefix=f"referee-{self.name}-"))
        try:
            if self.transport == "tls" and self.certificates is None:
                self.certificates = make_certificates(self.home / "tls")
            argv = self._write_config(self.home)
            env = {"HOME": str(self.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                   "LANG": "C.UTF-8", "TERM": "dumb"}
            self._child = pexpect.spawn(exe, argv, env=env, cwd=str(self.home),
                                        encoding="utf-8", codec_errors="replace",
                                        dimensions=(50, 500), echo=False)
        except DriverError:
            self.stop()
            raise
        except (OSError, pexpect.ExceptionPexpect) as exc:
            self.stop()
            raise DriverError(f"{self.name}: cannot launch {exe}: {exc}") from None
        self._start_thread(self._read_console, "console")
        for path, feed in self._trace_files():
            self._start_thread(lambda p=path, f=feed: self._tail_file(p, f), f"tail {path.name}")
        try:
            self._wait_output(self.ready_re, None, 0, deadline, "start-up")
            status = None
            while status is None:
                self._check_exited()
                status = sip_ping(self.host, self.port, timeout=0.3, transport=self.transport)
                if status is None and time.monotonic() > deadline:
                    raise DriverError(
                        f"{self.name}: started but does not answer SIP OPTIONS on "
                        f"{self.host}:{self.port}/{self.transport} within {timeout:.0f} s"
                        f"{self._tail_text()}")
            self.startup_seconds = time.monotonic() - t0
            self._emit("log", text=f"{self.name} up on {self.host}:{self.port}/{self.transport} "
                                   f"after {self.startup_seconds:.2f} s ({status})")
            self._after_start()
        except BaseException:   # whatever went wrong, leave no process or directory behind
            self.stop()
            raise

    def stop(self, timeout: float = 5.0) -> None:
        child = self._child
        try:
            if child is not None:
                self._stopping = True
                deadline = time.monotonic() + max(timeout, 1.0)
                if self._child_alive() and self.quit_command:
                    try:
                        child.send(self.quit_command + "\r")
                    except OSError:
                        pass
                    grace = time.monotonic() + timeout / 2
                    while self._child_alive() and time.monotonic() < grace:
                        time.sleep(0.05)
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    if not self._child_alive():
                        break
                    try:
                        os.killpg(child.pid, sig)   # the pty made it a process-group leader
                    except OSError:
                        pass
                    while self._child_alive() and time.monotonic() < deadline:
                        time.sleep(0.05)
                    deadline = time.monotonic() + 1.0
        except Exception:   # stop() never raises
            pass
        finally:
            self._halt.set()
            for t in self._threads:
                t.join(timeout=2.0)
            self._threads = []
            if child is not None:
                try:
                    child.close(force=True)
                except Exception:
                    pass
            self._child = None
            if self.home is not None:
                shutil.rmtree(self.home, ignore_errors=True)
                self.home = None

    @property
    def pid(self) -> int | None:
        """Process id of the running program (None before start / after stop)."""
        return self._child.pid if self._child is not None else None

    def alive(self) -> bool:
        return not self._exited and self._child_alive()

    def _child_alive(self) -> bool:
        child = self._child
        if child is None:
            return False
        with self._reap_lock:
            try:
                return child.isalive()
            except pexpect.ExceptionPexpect:
                return False

    def __enter__(self) -> "ConsolePhone":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- events ---------------------------------------------------------------------------
    def events(self) -> list[PhoneEvent]:
        with self._cond:
            return list(self._events)

    def wait_event(self, kind: str, timeout: float = 5.0, **match: str) -> PhoneEvent:
        want = {k: str(v) for k, v in match.items()}
        deadline = time.monotonic() + timeout
        with self._cond:
            first_new = len(self._events)
            while True:
                for i, ev in enumerate(self._events):
                    if i in self._consumed or ev.kind != kind:
                        continue
                    if all(ev.fields.get(k) == v for k, v in want.items()):
                        self._consumed.add(i)
                        return ev
                if self._exited and not self._stopping:
                    raise DriverError(f"{self.name}: waiting for {kind} {want or ''}: "
                                      f"{self._crash_text()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [e for i, e in enumerate(self._events)
                            if i >= first_new or i not in self._consumed]
                    summary = "; ".join(f"{e.kind} {dict(e.fields)}" for e in seen
                                        if e.kind != "log") or "nothing"
                    raise DriverError(f"{self.name}: no {kind} event matching {want} within "
                                      f"{timeout:g} s; unconsumed/new events: {summary}")
                self._cond.wait(left)

    def calls(self) -> list[tuple[str, str, str]]:
        """(handle, state, remote) of every call seen, oldest first."""
        with self._cond:
            return [(c.handle, c.state, c.remote) for c in self._calls]

    def output(self) -> list[str]:
        """Every console line so far (clean text)."""
        with self._cond:
            return list(self._lines)

    def output_tail(self) -> str:
        """The last non-empty console lines, for reports."""
        with self._cond:
            return "\n".join(self._tail)

    # -- behaviour switches ------------------------------------------------------------------
    def set_answer_mode(self, mode: str) -> None:
        if mode not in self.answer_modes:
            raise DriverError(f"{self.name}: answer mode {mode!r} not supported "
                              f"(supported: {', '.join(self.answer_modes)})")
        self._require_alive("set answer mode")
        self._apply_answer_mode(mode)
        self.answer_mode = mode

    def set_refer_policy(self, policy: str) -> None:
        if policy not in self.refer_policies:
            raise DriverError(f"{self.name}: refer policy {policy!r} not supported "
                              f"(supported: {', '.join(self.refer_policies)})")
        self._require_alive("set refer policy")
        self._apply_refer_policy(policy)
        self.refer_policy = policy

    def _apply_answer_mode(self, mode: str) -> None:
        raise DriverError(f"{self.name}: answer mode {mode!r} not supported")

    def _apply_refer_policy(self, policy: str) -> None:
        if policy != "accept":
            raise DriverError(f"{self.name}: refer policy {policy!r} not supported")

    # -- user actions -------------------------------------------------------------------------
    def dial(self, uri: str) -> str:
        if not re.fullmatch(r"sips?:[^\s<>\"]+", uri):
            raise DriverError(f"{self.name}: dial needs a sip: URI without spaces, got {uri!r}")
        self._require_alive("dial")
        with self._cond:
            before = len(self._calls)
        deadline = time.monotonic() + self.command_timeout
        self._do_dial(uri)
        key = uri_key(uri)
        with self._cond:
            while True:
                for call in self._calls[before:]:
                    if call.outgoing and call.key == key:
                        return call.handle
                self._check_exited()
                left = deadline - time.monotonic()
                if left <= 0:
                    self._pending_refs.pop(key, None)   # a name given for a call never made
                    raise DriverError(f"{self.name}: dialled {uri} but no INVITE to it was "
                                      f"sent within {self.command_timeout:g} s"
                                      f"{self._tail_text()}")
                self._cond.wait(left)

    def answer(self, call: str | None = None) -> None:
        c = self._find_call(call, "answer", states=("init", "early"), incoming=True)
        self._do_answer(c)

    def reject(self, code: int = 486, call: str | None = None) -> None:
        c = self._find_call(call, "reject", states=("init", "early"), incoming=True)
        self._do_reject(c, int(code))

    def hangup(self, call: str | None = None) -> None:
        c = self._find_call(call, "hang up")
        self._do_hangup(c)

    def transfer(self, target_uri: str, call: str | None = None) -> None:
        if not re.fullmatch(r"sips?:[^\s<>\"]+", target_uri):
            raise DriverError(f"{self.name}: transfer target must be a sip: URI without spaces, "
                              f"got {target_uri!r}")
        c = self._find_call(call, "transfer", states=("confirmed",))
        self._do_transfer(c, target_uri)

    def transfer_attended(self, call: str, consult_call: str) -> None:
        c = self._find_call(call, "transfer (attended)", states=("confirmed",))
        consult = self._find_call(consult_call, "transfer (attended) to", states=("confirmed",))
        if c is consult:
            raise DriverError(f"{self.name}: attended transfer needs two different calls, "
                              f"got {call!r} twice")
        self._do_transfer_attended(c, consult)

    @abc.abstractmethod
    def _do_dial(self, uri: str) -> None: ...

    @abc.abstractmethod
    def _do_answer(self, call: SoftCall) -> None: ...

    def _do_reject(self, call: SoftCall, code: int) -> None:
        raise DriverError(f"{self.name}: reject with {code} not supported")

    @abc.abstractmethod
    def _do_hangup(self, call: SoftCall) -> None: ...

    @abc.abstractmethod
    def _do_transfer(self, call: SoftCall, target: str) -> None: ...

    def _do_transfer_attended(self, call: SoftCall, consult: SoftCall) -> None:
        raise DriverError(f"{self.name}: attended transfer not supported")

    # -- calls ----------------------------------------------------------------------------
    def _find_call(self, handle: str | None, action: str, states: tuple[str, ...] = (),
                   incoming: bool | None = None) -> SoftCall:
        self._require_alive(action)
        with self._cond:
            if handle is not None:
                call = next((c for c in self._calls if c.handle == str(handle)), None)
                if call is None:
                    known = ", ".join(c.handle for c in self._calls) or "none"
                    raise DriverError(f"{self.name}: cannot {action}: no call {handle!r} "
                                      f"(known calls: {known})")
                if states and call.state not in states:
                    raise DriverError(f"{self.name}: cannot {action} call {handle}: it is "
                                      f"{call.state}, expected {' or '.join(states)}")
                return call
            wanted = [c for c in self._calls if c.live and (not states or c.state in states)
                      and (incoming is None or c.outgoing != incoming)]
            if not wanted:
                now = ", ".join(f"{c.handle}:{c.state}" for c in self._calls if c.live) or "none"
                raise DriverError(f"{self.name}: cannot {action}: no suitable call "
                                  f"(live calls: {now})")
            return wanted[-1]

    def _new_call(self, sip_call_id: str, remote: str, outgoing: bool, cseq: int) -> SoftCall:
        call = SoftCall(str(len(self._calls) + 1), sip_call_id, remote, outgoing, cseq)
        self._calls.append(call)
        self._by_sip_id[sip_call_id] = call
        pending = self._pending_refs.get(call.key)
        if pending:
            self._assign_ref(call, pending.popleft())
        return call

    def _bind_ref(self, remote: str, ref: str) -> None:
        """The program named a call with `remote` peer `ref`: bind it to our newest live call
        with that peer that has no name yet (or keep it until that call shows up)."""
        key = uri_key(remote)
        with self._cond:
            for call in reversed(self._calls):
                if call.live and call.ref is None and call.key == key:
                    self._assign_ref(call, ref)
                    return
            self._pending_refs[key].append(ref)

    def _assign_ref(self, call: SoftCall, ref: str) -> None:
        for other in self._calls:
            if other.ref == ref and other is not call:
                other.ref = None          # lines are reused: the old call lost its name
        call.ref = ref
        self._cond.notify_all()

    def _ref_of(self, call: SoftCall, action: str, timeout: float | None = None) -> str:
        """The program's name for `call`, waiting (bounded) for the console to give it."""
        deadline = time.monotonic() + (timeout or self.command_timeout)
        with self._cond:
            while call.ref is None:
                self._check_exited()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DriverError(f"{self.name}: cannot {action} call {call.handle} "
                                      f"({call.remote}): the program never named it")
                self._cond.wait(left)
            return call.ref

    def _refer_mark(self) -> int:
        """How many REFERs were sent so far (for _wait_refer_sent)."""
        with self._cond:
            return len(self._refers_out)

    def _wait_refer_sent(self, mark: int, call: SoftCall, what: str) -> None:
        """Wait (bounded) until a REFER, sent after `mark`, shows up in the trace for `call`."""
        deadline = time.monotonic() + self.command_timeout
        with self._cond:
            while not any(c is call for c in list(self._refers_out.values())[mark:]):
                self._check_exited()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DriverError(f"{self.name}: {what}: no REFER sent on call "
                                      f"{call.handle} within {self.command_timeout:g} s"
                                      f"{self._tail_text()}")
                self._cond.wait(left)

    # -- the SIP trace -> events ------------------------------------------------------------
    def _on_sip(self, direction: str, lines: list[str]) -> None:
        """What the program sent ('out') or received ('in') in one go, as printed: one SIP
        message, or on TCP/TLS possibly several (one read of the stream)."""
        for part in split_stream_read(lines):
            self._on_sip_message(direction, part)

    def _on_sip_message(self, direction: str, lines: list[str]) -> None:
        """One SIP message the program sent ('out') or received ('in'), as printed."""
        msg = sip_from_trace(lines)
        if msg is None:
            first = next((ln for ln in lines if ln.strip()), "")
            self._emit("log", text=f"unparsable SIP trace ({direction}): {first[:80]}")
            return
        seq, method = _cseq(msg)
        sip_id = msg.header("Call-ID") or ""
        is_req = msg.is_request
        ident = (direction, sip_id, seq, method, msg.method or msg.status)
        with self._cond:
            if ident in self._seen:           # retransmission
                return
            self._seen.add(ident)
            call = self._by_sip_id.get(sip_id)
            if is_req:
                self._on_request(direction, msg, call, sip_id, seq)
            elif call is not None:
                self._on_response(direction, msg, call, sip_id, seq, method)

    def _on_request(self, direction: str, msg: TracedMessage, call: SoftCall | None, sip_id: str,
                    seq: int) -> None:
        method = msg.method
        to_tagged = bool(_TO_TAG.search(msg.header("To") or ""))
        if method == "INVITE" and not to_tagged:
            if call is not None:
                if call.state == "ended":   # a new attempt after 401/407 reuses the Call-ID
                    call.state, call.invite_cseq = "init", seq
                return
            if direction == "out":
                self._new_call(sip_id, bare_uri(msg.header("To") or msg.uri), True, seq)
                return
            call = self._new_call(sip_id, bare_uri(msg.header("From") or ""), False, seq)
            replaces = msg.header("Replaces")
            fields = {"call": call.handle, "remote": call.remote,
                      "replaces": "1" if replaces else "0",
                      "request_uri": msg.uri, "sip_call_id": sip_id}
            if replaces:
                fields["replaces_header"] = replaces
                old = self._by_sip_id.get(replaces.split(";", 1)[0].strip())
                if old is not None:
                    fields["replaced_call"] = old.handle
            if msg.header("Referred-By"):
                fields["referred_by"] = msg.header("Referred-By") or ""
            self._emit("incoming", **fields)
            return
        if call is None:
            if method == "REFER" and direction == "in":
                self._refers_in[(sip_id, seq)] = (None, msg)
            return
        if method == "BYE":
            self._end(call, "", f"BYE {'received' if direction == 'in' else 'sent'}",
                      "remote" if direction == "in" else "local")
        elif method == "REFER":
            if direction == "in":
                self._refers_in[(sip_id, seq)] = (call, msg)
            else:
                self._refers_out[(sip_id, seq)] = call
                self._emit("log", text=f"call {call.handle}: REFER sent, Refer-To: "
                                       f"{msg.header('Refer-To')}")
        elif method == "NOTIFY" and (msg.header("Event") or "").lower().startswith("refer"):
            code, reason, line = _sipfrag(msg)
            state = msg.header("Subscription-State") or ""
            final = "1" if state.lower().startswith("terminated") else "0"
            if direction == "in":
                self._emit("transfer_status", call=call.handle, code=code, reason=reason,
                           sipfrag=line, subscription_state=state, final=final, source="notify")
            else:
                self._emit("log", text=f"call {call.handle}: NOTIFY sent: {line or '?'} "
                                       f"({state})")

    def _on_response(self, direction: str, msg: TracedMessage, call: SoftCall, sip_id: str,
                     seq: int, method: str) -> None:
        status = msg.status
        if method == "INVITE" and seq == call.invite_cseq and call.live:
            if status < 200:
                if call.state == "init":
                    call.state = "early"
                if 180 <= status < 190 and call.outgoing and not call.rang:
                    call.rang = True
                    self._emit("ringing", call=call.handle, code=status)
            elif status < 300:
                if call.state != "confirmed":
                    call.state = "confirmed"
                    self._emit("confirmed", call=call.handle, remote=call.remote,
                               sip_call_id=sip_id)
            elif status not in (401, 407):
                # 487 answers a CANCEL: the side that did not send it is the one that gave up
                by = "remote" if (direction == "in") != (status == 487) else "local"
                self._end(call, str(status), msg.reason, by)
        elif method == "REFER" and status >= 200:
            key = (sip_id, seq)
            if direction == "out" and key in self._refers_in:
                owner, refer = self._refers_in.pop(key)
                refer_to = refer.header("Refer-To") or ""
                fields = {"call": owner.handle if owner else "", "target": bare_uri(refer_to),
                          "refer_to": refer_to, "status": status,
                          "accepted": "1" if status < 300 else "0", "sip_call_id": sip_id,
                          "replaces": "1" if re.search(r"[?&]replaces=", refer_to, re.I)
                          else "0"}
                for header, name in (("Referred-By", "referred_by"), ("Refer-Sub", "refer_sub")):
                    if refer.header(header):
                        fields[name] = refer.header(header) or ""
                self._emit("transfer_request", **fields)
            elif direction == "in" and key in self._refers_out:
                fields = {"call": call.handle, "code": status, "reason": msg.reason,
                          "source": "response", "final": "1" if status >= 300 else "0"}
                if msg.header("Refer-Sub"):
                    fields["refer_sub"] = msg.header("Refer-Sub") or ""
                self._emit("transfer_status", **fields)

    def _end(self, call: SoftCall, code: str, reason: str, by: str) -> None:
        if not call.live:
            return
        call.state = "ended"
        self._emit("disconnected", call=call.handle, code=code, reason=reason, by=by)

    # -- console and files ------------------------------------------------------------------
    def _start_thread(self, target: Callable[[], None], what: str) -> None:
        t = threading.Thread(target=target, name=f"{self.name} {what}", daemon=True)
        self._threads.append(t)
        t.start()

    def _read_console(self) -> None:
        child = self._child
        assert child is not None
        buf = ""
        while True:
            try:
                chunk = child.read_nonblocking(65536, timeout=0.2)
            except pexpect.TIMEOUT:
                continue
            except (pexpect.EOF, OSError, ValueError):
                break
            buf += chunk
            *lines, buf = buf.split("\n")
            for raw in lines:
                self._feed_console(raw)
            with self._cond:
                self._partial = clean_text(buf)
                self._cond.notify_all()
        if buf:
            self._feed_console(buf)
        for _ in range(20):   # let the process be reaped to learn its exit status
            if not self._child_alive():
                break
            time.sleep(0.025)
        with self._cond:
            self._exited = True
            if child.signalstatus is not None:
                self._exit_note = f"killed by signal {child.signalstatus}"
            elif child.exitstatus is not None:
                self._exit_note = f"exit status {child.exitstatus}"
            else:
                self._exit_note = "closed its console"
            if not self._stopping:
                self._events.append(PhoneEvent("log", {"text": f"{self.name} "
                                                               f"{self._exit_note}"}))
            self._cond.notify_all()

    def _feed_console(self, raw: str) -> None:
        line = clean_text(raw)
        with self._cond:
            self._lines.append(line)
            if line.strip():
                self._tail.append(line)
            self._partial = ""
            self._cond.notify_all()
        try:
            self._on_console(line, raw.rstrip("\r"))
        except Exception as exc:   # a parser bug must not kill the reader
            self._emit("log", text=f"console parser error on {line[:80]!r}: {exc!r}")

    def _tail_file(self, path: Path, feed: Callable[[str | None], None]) -> None:
        """Feed each new line of `path` to `feed`, and None whenever the file goes quiet."""
        pos, buf, pending = 0, "", False
        while True:
            halted = self._halt.is_set()
            data = b""
            try:
                with open(path, "rb") as f:
                    f.seek(pos)
                    data = f.read()
            except OSError:
                pass
            if data:
                pos += len(data)
                buf += data.decode("utf-8", "replace")
                *lines, buf = buf.split("\n")
                for line in lines:
                    self._feed_trace(feed, line.rstrip("\r"))
                pending = True
                continue
            if pending and not buf:
                self._feed_trace(feed, None)    # quiet now: the last record is complete
                pending = False
            if halted:
                return
            self._halt.wait(0.03)

    def _feed_trace(self, feed: Callable[[str | None], None], line: str | None) -> None:
        try:
            feed(line)
        except Exception as exc:   # a parser bug must not kill the tailer
            self._emit("log", text=f"trace parser error on {(line or '')[:80]!r}: {exc!r}")

    # -- commands ---------------------------------------------------------------------------
    def _send(self, text: str) -> None:
        child = self._child
        if child is None or self._exited:
            raise DriverError(f"{self.name}: cannot send {text!r}: {self._crash_text()}")
        try:
            child.send(text + "\r")
        except OSError as exc:
            raise DriverError(f"{self.name}: cannot send {text!r}: {exc}") from None

    def _command(self, text: str, expect: re.Pattern[str] | str | None = None,
                 fail: re.Pattern[str] | str | None = None,
                 timeout: float | None = None) -> re.Match[str] | None:
        """Type one command; with `expect`, wait for a console line matching it (a line
        matching `fail` first raises DriverError with that line)."""
        with self._cmd_lock:
            with self._cond:
                mark = len(self._lines)
            self._send(text)
            if expect is None:
                return None
            deadline = time.monotonic() + (timeout or self.command_timeout)
            return self._wait_output(expect, fail, mark, deadline, repr(text))

    def _wait_output(self, expect: re.Pattern[str] | str, fail: re.Pattern[str] | str | None,
                     mark: int, deadline: float, what: str) -> re.Match[str]:
        exp = re.compile(expect) if isinstance(expect, str) else expect
        bad = re.compile(fail) if isinstance(fail, str) else fail
        with self._cond:
            i = mark
            while True:
                while i < len(self._lines):
                    line = self._lines[i]
                    i += 1
                    if bad is not None and bad.search(line):
                        raise DriverError(f"{self.name}: {what} failed: {line.strip()}")
                    m = exp.search(line)
                    if m:
                        return m
                m = exp.search(self._partial)   # prompts have no newline
                if m:
                    return m
                self._check_exited()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DriverError(f"{self.name}: {what}: no output matching "
                                      f"/{exp.pattern}/ in time{self._tail_text()}")
                self._cond.wait(min(left, 0.5))

    def _emit(self, kind: str, **fields: object) -> None:
        event = PhoneEvent(kind, {k: "" if v is None else str(v) for k, v in fields.items()})
        with self._cond:
            self._events.append(event)
            self._cond.notify_all()

    # -- errors ---------------------------------------------------------------------------
    def _require_alive(self, action: str) -> None:
        if self._child is None:
            raise DriverError(f"{self.name}: cannot {action}: not started")
        self._check_exited()

    def _check_exited(self) -> None:
        if self._exited and not self._stopping:
            raise DriverError(f"{self.name}: {self._crash_text()}")

    def _crash_text(self) -> str:
        if self._child is None and not self._exited:
            return "not running"
        hint = self._exit_hint()
        return (f"program exited unexpectedly ({self._exit_note})" + (f": {hint}" if hint else "")
                + self._tail_text())

    def _exit_hint(self) -> str:
        """What the program's last words mean, when a product module knows (else "")."""
        return ""

    def _tail_text(self) -> str:
        with self._cond:
            tail = list(self._tail)[-15:]
        if not tail:
            return "; it printed nothing"
        return "; last output:\n    " + "\n    ".join(tail)
