"""Run SIPp under pexpect: start, follow the screen, press keys, stop, collect the result.

SIPp needs a terminal for its screen and its keyboard commands, so it runs on a pty
(pexpect). A reader thread drains the pty (SIPp blocks if nobody reads), replays the bytes
on a `Terminal`, parses each complete screen, and enforces the wall-clock timeout: soft quit
(`q`), forced quit (`q` again), SIGTERM, SIGKILL. Every run gets its own work directory for
the statistics, error and screen files.
"""

from __future__ import annotations

import codecs
import math
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pexpect

from referee.sipp.binary import find_sipp
from referee.sipp.errors import SippError, SippPortInUse, SippScenarioError, SippStartError, SippTimeout
from referee.sipp.ports import free_media_port, free_port, process_holds_port
from referee.sipp.result import EXIT_MEANINGS, Progress, SippResult, collect, terminal_errors
from referee.sipp.screen import ScreenSnapshot, parse_screen
from referee.sipp.stats import StatRow, read_stat_csv
from referee.sipp.template import render
from referee.sipp.terminal import Terminal

_ROWS, _COLS = 160, 120
_ANSI = re.compile(r"\x1b\[[0-9;?]*[@A-Za-z]|\x1b[()*+][0-9A-Za-z]|\x1b[=>78DEMc]|[\x0e\x0f]")
_TRANSPORTS = {"u1", "un", "ui", "t1", "tn", "l1", "ln"}
# pauses between the steps of a forced stop
_QUIT_GRACE = 2.0
_TERM_GRACE = 2.0


class Sipp:
    """One SIPp process on a pty.

    `scenario` is a template of the library (`'uas_target'`), a path to a template or plain
    scenario file, or `'builtin:uac'` for one of SIPp's embedded scenarios. Template
    parameters go in `params`. `remote` is the peer ("host:port" or a tuple); with `proxy`
    every message is sent to the proxy instead (SIPp's -rsa) while the scenario's
    [remote_ip]:[remote_port] still name the peer. `timeout` is the wall-clock budget of
    the whole run. Use as a context manager, or call `start()` and `stop()`.
    """

    def __init__(self, scenario: str | Path, remote: str | tuple[str, int] | None = None, *,
                 params: Mapping[str, object] | None = None,
                 name: str | None = None,
                 local_ip: str = "127.0.0.1",
                 port: int = 0,
                 transport: str = "u1",
                 calls: int | None = None,
                 rate: float | None = None,
                 rate_period_ms: int | None = None,
                 max_concurrent: int | None = None,
                 timeout: float = 30.0,
                 recv_timeout_ms: int | None = 10000,
                 service: str | None = None,
                 variables: Mapping[str, object] | None = None,
                 twin: tuple[str, int] | None = None,
                 proxy: str | tuple[str, int] | None = None,
                 trace_rtt: bool = False,
                 trace_msg: bool = False,
                 trace_logs: bool = False,
                 extra_args: Sequence[str] = (),
                 work_dir: Path | None = None,
                 binary: str | None = None) -> None:
        if transport not in _TRANSPORTS:
            raise SippError(f"transport {transport!r} is not one of {sorted(_TRANSPORTS)}")
        if timeout <= 0:
            raise SippError(f"timeout must be > 0 s, got {timeout}")
        self.binary = find_sipp(binary)
        self.scenario = scenario
        self.remote = f"{remote[0]}:{remote[1]}" if isinstance(remote, tuple) else remote
        self.params = dict(params or {})
        self.name = name or Path(str(scenario)).stem.replace("builtin:", "")
        self.local_ip = local_ip
        self.port = port
        self.transport = transport
        self.calls = calls
        self.rate = rate
        self.rate_period_ms = rate_period_ms
        self.max_concurrent = max_concurrent
        self.timeout = timeout
        self.recv_timeout_ms = recv_timeout_ms
        self.service = service
        self.variables = dict(variables or {})
        self.twin = twin
        self.proxy = f"{proxy[0]}:{proxy[1]}" if isinstance(proxy, tuple) else proxy
        self.trace_rtt = trace_rtt
        self.trace_msg = trace_msg
        self.trace_logs = trace_logs
        self.extra_args = list(extra_args)
        # the run's files: the given directory (kept), else a temporary one made by start()
        # and removed once the result is collected
        self._own_work_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.gettempdir()) / "referee-sipp-unstarted"
        self.scenario_file: Path | None = None
        self.command: list[str] = []

        self._child: pexpect.spawn | None = None
        self._thread: threading.Thread | None = None
        self._cond = threading.Condition()
        self._term = Terminal(_ROWS, _COLS)
        self._raw: list[str] = []
        self._screen = ScreenSnapshot(kind="none", footer="", text="")
        self._scenario_screen: ScreenSnapshot | None = None
        self._screens_seen = 0
        self._drawing = False         # a screen title was drawn (the screen may still be partial)
        self._eof = False
        self._started_at = 0.0
        self._deadline = math.inf
        self._stop_stage = 0          # 0 running, 1 q sent, 2 q again, 3 SIGTERM, 4 SIGKILL
        self._stop_stage_at = 0.0
        self._timed_out = False
        self._result: SippResult | None = None

    # -- life cycle ------------------------------------------------------------------------
    def __enter__(self) -> "Sipp":
        if self._child is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        """(local_ip, port) where this SIPp receives SIP."""
        return (self.local_ip, self.port)

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def start(self, ready_timeout: float = 10.0) -> "Sipp":
        """Launch SIPp and return once its socket is bound and its first screen is drawn."""
        if self._child is not None:
            raise SippError(f"SIPp {self.name} was already started")
        if self._own_work_dir:
            self.work_dir = Path(tempfile.mkdtemp(prefix=f"referee-sipp-{self.name}-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        chosen = self.port == 0
        attempts = 3 if chosen else 1
        try:
            self._prepare_scenario()
            for attempt in range(attempts):
                if chosen:
                    self.port = free_port(self.local_ip, udp=True, tcp=self.transport[0] in "tl")
                try:
                    self._launch(ready_timeout)
                    return self
                except SippPortInUse:
                    # another process took the port between our probe and SIPp's bind
                    if attempt == attempts - 1:
                        raise
        except SippError:
            self._remove_work_dir()
            raise
        raise AssertionError("unreachable")

    def _prepare_scenario(self) -> None:
        scenario = str(self.scenario)
        if scenario.startswith("builtin:"):
            if self.params:
                raise SippError(f"builtin scenario {scenario!r} takes no template parameters")
            return
        self.scenario_file = render(self.scenario, self.params, self.work_dir / f"{self.name}.xml")

    def _arguments(self, media_port: int) -> list[str]:
        args: list[str] = []
        if self.remote:
            args.append(self.remote)
        scenario = str(self.scenario)
        if scenario.startswith("builtin:"):
            args += ["-sn", scenario.split(":", 1)[1]]
        else:
            args += ["-sf", str(self.scenario_file)]
        args += ["-i", self.local_ip, "-p", str(self.port), "-t", self.transport,
                 "-mi", self.local_ip, "-mp", str(media_port), "-ci", self.local_ip,
                 "-trace_stat", "-stf", str(self.work_dir / "stats.csv"), "-fd", "1",
                 "-trace_err", "-error_file", str(self.work_dir / "errors.log"),
                 "-trace_screen", "-screen_file", str(self.work_dir / "screens.log"),
                 # SIPp's own global timeout is a safety net behind our watchdog
                 "-timeout", f"{int(math.ceil(self.timeout)) + 10}s"]
        if self.calls is not None:
            args += ["-m", str(self.calls)]
        if self.rate is not None:
            args += ["-r", f"{self.rate:g}"]
        if self.rate_period_ms is not None:
            args += ["-rp", f"{self.rate_period_ms}ms"]
        if self.max_concurrent is not None:
            args += ["-l", str(self.max_concurrent)]
        if self.recv_timeout_ms is not None:
            args += ["-recv_timeout", f"{self.recv_timeout_ms}ms"]
        if self.service is not None:
            args += ["-s", self.service]
        for key, value in self.variables.items():
            args += ["-set", key, str(value)]
        if self.twin is not None:
            args += ["-3pcc", f"{self.twin[0]}:{self.twin[1]}"]
        if self.proxy is not None:
            # outbound proxy: [remote_ip]/[remote_port] keep naming the peer, packets go here
            args += ["-rsa", self.proxy]
        if self.trace_rtt:
            args += ["-trace_rtt", "-rtt_freq", "1"]
        if self.trace_msg:
            args += ["-trace_msg", "-message_file", str(self.work_dir / "messages.log")]
        if self.trace_logs:
            args += ["-trace_logs", "-log_file", str(self.work_dir / "logs.log")]
        return args + self.extra_args

    def _launch(self, ready_timeout: float) -> None:
        media_port = free_media_port(self.local_ip)
        args = self._arguments(media_port)
        self.command = [self.binary, *args]
        # ncurses takes LINES/COLUMNS from the environment over the pty size (pytest-xdist
        # workers, for one, export COLUMNS), so pin them to the emulated screen
        env = dict(os.environ, TERM="vt100", LANG="C", LC_ALL="C", LINES=str(_ROWS), COLUMNS=str(_COLS))
        self._reset_output()
        self._child = pexpect.spawn(self.binary, args, cwd=str(self.work_dir), env=env,
                                    dimensions=(_ROWS, _COLS), echo=False)
        self._started_at = time.monotonic()
        self._deadline = self._started_at + self.timeout
        self._thread = threading.Thread(target=self._read_loop, name=f"sipp-{self.name}", daemon=True)
        self._thread.start()
        try:
            self._wait_ready(ready_timeout)
        except SippError:
            self._kill_now()
            raise

    def _holds_port(self) -> bool:
        """SIPp itself has its SIP socket bound (not merely: somebody holds the port)."""
        pid = self.pid
        return pid is not None and process_holds_port(pid, self.port, udp=self.transport[0] == "u")

    def _reset_output(self) -> None:
        self._term = Terminal(_ROWS, _COLS)
        self._raw = []
        self._screen = ScreenSnapshot(kind="none", footer="", text="")
        self._scenario_screen = None
        self._screens_seen = 0
        self._drawing = False
        self._eof = False
        self._stop_stage = 0
        self._timed_out = False
        self._result = None

    def _wait_ready(self, ready_timeout: float) -> None:
        deadline = time.monotonic() + ready_timeout
        # ready = SIPp draws its running screen (it does so after setting up its sockets)
        # and the SIPp process itself holds its SIP port
        with self._cond:
            while not self._eof and not self._drawing:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.2))
            eof, running = self._eof, self._drawing
        if eof or not running:
            self._raise_start_failure(eof or not self.alive(), ready_timeout)
        while not self._holds_port():
            if not self.alive() or self._eof:
                self._wait_exit(1.0)
                self._raise_start_failure(True, ready_timeout)
            if time.monotonic() > deadline:
                self._raise_start_failure(False, ready_timeout)
            time.sleep(0.02)
        # let the first screen finish drawing so screen() has numbers (a screen taller than
        # the emulated terminal never completes: not an error)
        with self._cond:
            until = min(deadline, time.monotonic() + 2.0)
            while self._screens_seen == 0 and not self._eof and time.monotonic() < until:
                self._cond.wait(0.05)

    def _raise_start_failure(self, exited: bool, ready_timeout: float) -> None:
        if exited:
            self._finish_process(cleanup=False)
        output = self.output()
        said = terminal_errors(output) or [line.strip() for line in output.splitlines() if line.strip()][-5:]
        quote = " | ".join(said) or "(no output)"
        code = self._child.exitstatus if self._child is not None else None
        if not exited:
            raise SippStartError(f"SIPp {self.name} was not ready within {ready_timeout:g} s (no running "
                                 f"screen, or its port {self.port} not bound); output so far: {quote}")
        if "already in use" in quote or "Unable to bind" in quote or code == 254:
            raise SippPortInUse(f"SIPp {self.name} could not bind {self.local_ip}:{self.port}: {quote}")
        scenario_words = ("xml", "scenario", "element", "attribute", "label", "variable", "keyword")
        if any(w in quote.lower() for w in scenario_words):
            raise SippScenarioError(f"SIPp {self.name} rejected scenario "
                                    f"{self.scenario_file or self.scenario}: {quote}")
        meaning = EXIT_MEANINGS.get(code or 0, "") if code is not None else "killed"
        raise SippStartError(f"SIPp {self.name} exited before it was ready (exit {code}: {meaning}): {quote}")

    # -- the reader / watchdog thread --------------------------------------------------------
    def _read_loop(self) -> None:
        child = self._child
        assert child is not None
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while True:
            try:
                chunk = child.read_nonblocking(65536, timeout=0.1)
            except pexpect.TIMEOUT:
                chunk = b""
            except (pexpect.EOF, OSError, ValueError):
                break
            if chunk:
                self._consume(decoder.decode(chunk))
            self._watchdog()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _consume(self, text: str) -> None:
        with self._cond:
            self._raw.append(text)
            self._term.feed(text)
            snap = parse_screen(self._term.lines())
            if snap.kind != "none" and not snap.terminated:
                self._drawing = True
            if snap.kind not in ("none", "partial"):
                self._screen = snap
                self._screens_seen += 1
                if snap.kind == "scenario":
                    self._scenario_screen = snap
            self._cond.notify_all()

    def _watchdog(self) -> None:
        now = time.monotonic()
        if self._stop_stage == 0:
            if now < self._deadline:
                return
            self._timed_out = True
            self._advance_stop(now)
        elif now - self._stop_stage_at >= (_QUIT_GRACE if self._stop_stage < 3 else _TERM_GRACE):
            self._advance_stop(now)

    def _advance_stop(self, now: float) -> None:
        """One more step of stopping: q, q again (force), SIGTERM, SIGKILL."""
        child = self._child
        if child is None or self._stop_stage >= 4:
            return
        self._stop_stage += 1
        self._stop_stage_at = now
        try:
            if self._stop_stage <= 2:
                child.send(b"q")
            elif self._stop_stage == 3:
                child.kill(signal.SIGTERM)
            else:
                child.kill(signal.SIGKILL)
        except OSError:
            pass

    # -- watching --------------------------------------------------------------------------
    def alive(self) -> bool:
        child = self._child
        if child is None:
            return False
        # isalive() reaps with waitpid; the reader thread's EOF handling may reap first, and then
        # pexpect raises "no child process": the process is gone either way.
        try:
            return child.isalive()
        except (pexpect.ExceptionPexpect, ChildProcessError):
            return False

    def screen(self) -> ScreenSnapshot:
        """The last complete screen SIPp drew."""
        with self._cond:
            return self._screen

    def output(self) -> str:
        """Everything SIPp printed so far, without terminal escape sequences."""
        with self._cond:
            raw = "".join(self._raw)
        return _ANSI.sub("", raw).replace("\r\n", "\n")

    def wait_screen(self, predicate: Callable[[ScreenSnapshot], bool], timeout: float,
                    what: str = "the expected screen") -> ScreenSnapshot:
        """Wait (bounded) for a newly drawn screen that satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = self._screens_seen
            while True:
                if self._screens_seen != seen or seen == 0:
                    seen = self._screens_seen
                    if seen and predicate(self._screen):
                        return self._screen
                if self._eof:
                    raise SippError(f"SIPp {self.name} exited while waiting for {what}; "
                                    f"last screen footer: {self._screen.footer!r}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SippTimeout(f"waited {timeout:g} s for {what} on SIPp {self.name}; "
                                      f"last {self._screen.kind} screen:\n{self._screen.text}")
                self._cond.wait(min(left, 0.2))

    def progress(self) -> Progress:
        """Live counters (screen for rates, periodic statistics file for successful/failed)."""
        rows = read_stat_csv(self.work_dir / "stats.csv")
        last = rows[-1] if rows else StatRow({})
        screen = self.screen()
        scenario = self._scenario_screen
        return Progress(
            created=max(last.created, (scenario.total_calls or 0) if scenario else 0),
            successful=screen.successful if screen.successful is not None else last.successful,
            failed=screen.failed if screen.failed is not None else last.failed,
            current=screen.current_calls if screen.current_calls is not None else last.current,
            target_rate=scenario.target_rate if scenario else None,
            rate=screen.rate,
        )

    def wait_calls(self, done: int, timeout: float) -> Progress:
        """Wait until `done` calls have ended (successful + failed)."""
        deadline = time.monotonic() + timeout
        while True:
            prog = self.progress()
            if prog.successful + prog.failed >= done:
                return prog
            if not self.alive():
                raise SippError(f"SIPp {self.name} exited after {prog.successful + prog.failed} of "
                                f"{done} calls ended ({prog.successful} successful, {prog.failed} failed)")
            if time.monotonic() > deadline:
                raise SippTimeout(f"waited {timeout:g} s for {done} calls to end on SIPp {self.name}; "
                                  f"{prog.successful} successful, {prog.failed} failed, "
                                  f"{prog.current} in progress")
            time.sleep(0.1)

    # -- keys ------------------------------------------------------------------------------
    def send_key(self, key: str) -> None:
        """Press one of SIPp's interactive keys (`+ - * /` rate, `p` pause, `q` quit, `1`-`9` screens)."""
        if len(key) != 1:
            raise SippError(f"send_key takes one character, got {key!r}")
        if not self.alive():
            raise SippError(f"SIPp {self.name} is not running; cannot press {key!r}")
        assert self._child is not None
        self._child.send(key.encode())

    def show(self, screen: int) -> ScreenSnapshot:
        """Switch SIPp to screen 1-9 and return it once drawn (1 scenario, 2 statistics)."""
        if not 1 <= screen <= 9:
            raise SippError(f"SIPp screens are numbered 1-9, got {screen}")
        self.send_key(str(screen))
        # a switch redraws the whole screen, possibly over several reads: wait for its numbers
        complete = {1: lambda s: s.kind == "scenario" and s.total_calls is not None,
                    2: lambda s: s.kind == "statistics" and s.call_rate is not None
                    and s.total_calls is not None}
        return self.wait_screen(complete.get(screen, lambda s: s.kind not in ("scenario", "statistics")),
                                5.0, f"screen {screen}")

    def rate_up(self, by_ten: bool = False) -> None:
        self.send_key("*" if by_ten else "+")

    def rate_down(self, by_ten: bool = False) -> None:
        self.send_key("/" if by_ten else "-")

    def set_rate(self, rate: int, timeout: float = 5.0) -> ScreenSnapshot:
        """Change the call rate with the +/-/*// keys until the scenario screen shows `rate`."""
        screen = self._scenario_screen or self.show(1)
        if screen.target_rate is None:
            raise SippError(f"SIPp {self.name} shows no call rate (server scenarios have none)")
        delta = int(round(rate - screen.target_rate))
        for _ in range(abs(delta) // 10):
            self.send_key("*" if delta > 0 else "/")
        for _ in range(abs(delta) % 10):
            self.send_key("+" if delta > 0 else "-")
        if self.screen().kind != "scenario":
            self.show(1)
        return self.wait_screen(lambda s: s.kind == "scenario" and s.target_rate is not None
                                and abs(s.target_rate - rate) < 1e-6, timeout, f"target rate {rate}")

    def pause(self) -> ScreenSnapshot:
        if self.screen().paused:
            return self.screen()
        self.send_key("p")
        return self.wait_screen(lambda s: s.paused, 5.0, "the 'Traffic Paused' footer")

    def resume(self) -> ScreenSnapshot:
        if not self.screen().paused:
            return self.screen()
        self.send_key("p")
        return self.wait_screen(lambda s: not s.paused, 5.0, "traffic to resume")

    # -- ending ------------------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> SippResult:
        """Wait for SIPp to exit by itself (at most `timeout`, default: its wall-clock budget).

        If the wall-clock timeout runs out first the watchdog stops SIPp, and the result says
        `timed_out`. Raises SippTimeout only if `timeout` is shorter and ends first."""
        if self._child is None:
            raise SippError(f"SIPp {self.name} was never started")
        budget = (self._deadline - time.monotonic() + 2 * _QUIT_GRACE + 2 * _TERM_GRACE + 1
                  if timeout is None else timeout)
        if not self._join(max(budget, 0.0)):
            raise SippTimeout(f"SIPp {self.name} still running after {budget:.1f} s; "
                              f"screen footer: {self.screen().footer!r}")
        return self._finish_process()

    def quit(self, timeout: float = 10.0) -> SippResult:
        """Graceful `q`: SIPp stops creating calls and lets the current ones end (for up to
        `timeout` s; then it is stopped by force). Returns the result."""
        if self.alive() and self._stop_stage == 0:
            self._advance_stop(time.monotonic())
            self._join(timeout)
        return self.stop()

    def stop(self, timeout: float = 5.0) -> SippResult:
        """Stop for sure: q, q again, SIGTERM, SIGKILL; always reaps the process."""
        if self._child is None:
            raise SippError(f"SIPp {self.name} was never started")
        if self._result is not None:
            return self._result
        end = time.monotonic() + timeout
        if self.alive() and self._stop_stage == 0:
            self._advance_stop(time.monotonic())
        while self.alive() and time.monotonic() < end:
            if time.monotonic() - self._stop_stage_at >= min(_QUIT_GRACE, timeout / 4):
                self._advance_stop(time.monotonic())
            self._join(0.1)
        if self.alive():
            self._kill_now()
        self._join(2.0)
        return self._finish_process()

    def _join(self, timeout: float) -> bool:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                return False
        return not self.alive() or self._wait_exit(0.5)

    def _wait_exit(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > end:
                return False
            time.sleep(0.02)
        return True

    def _kill_now(self) -> None:
        child = self._child
        if child is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not self.alive():
                break
            try:
                child.kill(sig)
            except OSError:
                break
            self._wait_exit(_TERM_GRACE)
        if self._thread is not None:
            self._thread.join(2.0)

    def _remove_work_dir(self) -> None:
        if self._own_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def _finish_process(self, cleanup: bool = True) -> SippResult:
        if self._result is not None:
            return self._result
        child = self._child
        assert child is not None
        if self._thread is not None:
            self._thread.join(2.0)
        try:
            child.close(force=True)
        except pexpect.ExceptionPexpect:
            pass
        self._result = self._collect(child.exitstatus, child.signalstatus)
        if cleanup:
            self._remove_work_dir()
        return self._result

    def _collect(self, exit_code: int | None, sig: int | None) -> SippResult:
        return collect(name=self.name, command=self.command, work_dir=self.work_dir,
                       exit_code=exit_code, sig=sig, output=self.output(),
                       messages=self._scenario_screen.messages if self._scenario_screen else (),
                       duration=time.monotonic() - self._started_at, timed_out=self._timed_out)


def run(scenario: str | Path, remote: str | tuple[str, int] | None = None, *,
        timeout: float = 30.0, check: bool = False, **options: object) -> SippResult:
    """Start SIPp, wait until it exits by itself (bounded by `timeout`), return the result.

    With `check=True`, raise SippCallsFailed unless every call succeeded."""
    sipp = Sipp(scenario, remote, timeout=timeout, **options)  # type: ignore[arg-type]
    try:
        sipp.start()
        result = sipp.wait()
    finally:
        if sipp.alive():
            sipp.stop()
    return result.check() if check else result
