"""Kamailio as the proxy DUT: launch, probe, stop.

`KamailioProxy` runs `kamailio -DD -E` (foreground, log to stderr) with the config from
duts/kamailio/, listening on a free port of the loopback (or the given host:port). Each
instance has its own run directory (runtime dir `-Y`, pid file, working dir, log file), so
several proxies can run side by side. `start()` returns once Kamailio answers an OPTIONS
probe; `stop()` always reaps the whole process group.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from referee.transport import Received, TransportError, open_udp

from .driver import ProgramMissing
from .programs import find_program

#: the proxy configuration shipped with referee
DEFAULT_CFG = Path(__file__).resolve().parents[2] / "duts" / "kamailio" / "kamailio.cfg"
INSTALL_HINT = "install it: apt-get install kamailio, or run ./install.sh"

_ERROR_LINE = re.compile(r"(ERROR|CRITICAL|ALERT|BUG)[: ].*")


class KamailioError(RuntimeError):
    """Kamailio is missing, did not start, or did not answer."""


class KamailioPortInUse(KamailioError):
    """The port asked for is held by another process."""


class KamailioMissing(KamailioError, ProgramMissing):
    """The kamailio program is not installed (a KamailioError and a ProgramMissing)."""


def find_kamailio(binary: str | None = None) -> str:
    """Path of the kamailio executable (PATH, then /usr/sbin and /usr/local/sbin)."""
    wanted = binary or os.environ.get("REFEREE_KAMAILIO") or "kamailio"
    try:
        return find_program(wanted, "kamailio")
    except ProgramMissing as exc:
        raise KamailioMissing(f"Kamailio: {exc}") from None


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(family, kind) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def _free_port(host: str) -> int:
    """A port free for both UDP and TCP on host (Kamailio listens on both)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if _port_free(host, port):
            return port
    raise KamailioError(f"no port free for both UDP and TCP found on {host}")


def _run_coroutine(coro):  # type: ignore[no-untyped-def]
    """Run a coroutine to completion from sync code, even if this thread has a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, object] = {}

    def worker() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


class KamailioProxy:
    """One Kamailio process acting as a registrar + record-routing proxy on host:port."""

    name = "kamailio"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, cfg: str | Path | None = None, *,
                 defines: Sequence[str] = (), domain: str | None = None,
                 children: int = 2, shm_mb: int = 128, pkg_mb: int = 8,
                 run_dir: Path | None = None, binary: str | None = None) -> None:
        self.host = host
        self.port = port
        self.cfg = Path(cfg) if cfg is not None else DEFAULT_CFG
        self.defines = list(defines)
        self.domain = domain
        self.children = children
        self.shm_mb = shm_mb
        self.pkg_mb = pkg_mb
        self.binary = binary
        self._own_run_dir = run_dir is None
        self.run_dir = Path(run_dir) if run_dir else None
        self.command: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_handle = None
        self._log_text = ""

    # -- properties ---------------------------------------------------------------------------
    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def uri(self) -> str:
        """SIP URI of the proxy (for Route headers / outbound proxy settings)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"sip:{host}:{self.port};lr"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        return self.run_dir / "kamailio.log" if self.run_dir else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        """Everything Kamailio logged so far (kept after stop())."""
        path = self.log_path
        if path is not None and path.is_file():
            self._log_text = path.read_text(encoding="utf-8", errors="replace")
        return self._log_text

    # -- life cycle ------------------------------------------------------------------------------
    def __enter__(self) -> "KamailioProxy":
        if self._proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 10.0) -> "KamailioProxy":
        """Launch Kamailio; return once it answers an OPTIONS probe. Raises KamailioError."""
        if self._proc is not None:
            raise KamailioError("this Kamailio instance was already started")
        if not self.cfg.is_file():
            raise KamailioError(f"Kamailio config {self.cfg} does not exist")
        binary = find_kamailio(self.binary)
        chosen = self.port == 0
        attempts = 3 if chosen else 1
        try:
            for attempt in range(attempts):
                if chosen:
                    self.port = _free_port(self.host)
                elif not _port_free(self.host, self.port):
                    raise KamailioPortInUse(f"Kamailio: {self.host}:{self.port} (UDP or TCP) is already in use")
                try:
                    self._launch(binary, timeout)
                    return self
                except KamailioPortInUse:
                    if attempt == attempts - 1:
                        raise
        except KamailioError:
            self._cleanup()
            raise
        raise AssertionError("unreachable")

    def _launch(self, binary: str, timeout: float) -> None:
        if self.run_dir is None:
            self.run_dir = Path(tempfile.mkdtemp(prefix="referee-kamailio-"))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        listen = f"[{self.host}]" if ":" in self.host else self.host
        self.command = [binary, "-DD", "-E", "-f", str(self.cfg),
                        "-l", f"udp:{listen}:{self.port}", "-l", f"tcp:{listen}:{self.port}",
                        "-Y", str(self.run_dir), "-P", str(self.run_dir / "kamailio.pid"),
                        "-w", str(self.run_dir), "-a", "no", "-n", str(self.children),
                        "-m", str(self.shm_mb), "-M", str(self.pkg_mb)]
        for define in self.defines:
            self.command += ["-A", define]
        if self.domain:
            self.command.append(f"--alias={self.domain}")
        if self._log_handle is not None:
            self._log_handle.close()
        self._log_handle = open(self.run_dir / "kamailio.log", "wb")
        self._proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=self._log_handle,
                                      stderr=subprocess.STDOUT, cwd=str(self.run_dir),
                                      start_new_session=True)
        try:
            self._wait_ready(timeout)
        except KamailioError:
            self._terminate(2.0)
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                self._raise_exited()
            if _run_coroutine(self._probe(min(0.2, max(deadline - time.monotonic(), 0.05)))):
                return
        if not self.alive():
            self._raise_exited()
        raise KamailioError(f"Kamailio on {self.host}:{self.port} did not answer an OPTIONS probe "
                            f"within {timeout:g} s; log tail: {self._log_tail()}")

    def _raise_exited(self) -> None:
        assert self._proc is not None
        code = self._proc.wait()
        text = self.log()
        errors = [m.group(0).strip() for m in _ERROR_LINE.finditer(text)]
        quote = " | ".join(dict.fromkeys(errors)) or self._log_tail()
        if "Address already in use" in text:
            raise KamailioPortInUse(f"Kamailio could not bind {self.host}:{self.port}: {quote}")
        raise KamailioError(f"Kamailio exited during start (exit code {code}) with config {self.cfg}: {quote}")

    def _log_tail(self, lines: int = 8) -> str:
        tail = [line for line in self.log().splitlines() if line.strip()][-lines:]
        return " | ".join(tail) or "(empty log)"

    async def _probe(self, wait: float) -> bool:
        """Send OPTIONS sip:HOST:PORT over UDP; True once any SIP reply comes back."""
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[bytes] = loop.create_future()

        def on_receive(rx: Received) -> None:
            if rx.data.startswith(b"SIP/2.0 ") and not answered.done():
                answered.set_result(rx.data)

        try:
            transport = await open_udp(self.host, 0, on_receive)
        except TransportError:
            return False
        try:
            await transport.send(self._options(transport.local), (self.host, self.port))
            await asyncio.wait_for(answered, wait)
            return True
        except (asyncio.TimeoutError, TransportError):
            return False
        finally:
            transport.close()

    def _options(self, local: tuple[str, int]) -> bytes:
        host = f"[{self.host}]" if ":" in self.host else self.host
        me = f"[{local[0]}]" if ":" in local[0] else local[0]
        tag = uuid.uuid4().hex[:10]
        return (f"OPTIONS sip:{host}:{self.port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {me}:{local[1]};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport\r\n"
                f"Max-Forwards: 70\r\n"
                f"From: <sip:probe@{me}:{local[1]}>;tag={tag}\r\n"
                f"To: <sip:{host}:{self.port}>\r\n"
                f"Call-ID: probe-{uuid.uuid4().hex}\r\n"
                f"CSeq: 1 OPTIONS\r\n"
                f"Content-Length: 0\r\n\r\n").encode()

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL to the whole process group; never raises; always reaps."""
        try:
            self._terminate(timeout)
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        """Keep the log text, close it, remove our own run directory."""
        self.log()
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        if self._own_run_dir and self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _terminate(self, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the group is the main process's pid
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout)
            except (subprocess.TimeoutExpired, OSError):
                pass
        # children (and a main process that ignored SIGTERM) go with SIGKILL
        for _ in range(2):
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        try:
            proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            pass
