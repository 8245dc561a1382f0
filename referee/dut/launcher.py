"""Start and stop a DUT process given by a profile's `launch` command.

The child gets a free port, is watched until it prints the profile's `ready` pattern, dies with
us (PR_SET_PDEATHSIG) so a killed run leaves no DUT behind, and is always reaped.
"""

from __future__ import annotations

import collections
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

from .driver import DriverError, ProgramMissing

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass
    os.setpgrp()


def free_port(host: str = "127.0.0.1", kind: int = socket.SOCK_DGRAM) -> int:
    """A port free for both UDP and TCP right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        try:
            with socket.socket(socket.AF_INET, other) as s:
                s.bind((host, port))
            return port
        except OSError:
            continue
    raise DriverError(f"no free port on {host}")


class LaunchedProcess:
    def __init__(self, argv: list[str], ready: str, name: str = "dut", cwd: str | None = None) -> None:
        self.argv = argv
        self.ready = re.compile(ready)
        self.name = name
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        self.tail: collections.deque[str] = collections.deque(maxlen=60)
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self, timeout: float) -> None:
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, cwd=self.cwd, preexec_fn=_die_with_parent,
                                         text=True, errors="replace", bufsize=1)
        except FileNotFoundError:
            from .programs import install_hint
            raise ProgramMissing(f"{self.name}: cannot launch {self.argv[0]!r}: not found; "
                                 f"{install_hint(self.argv[0])}") from None
        except OSError as exc:
            raise DriverError(f"{self.name}: cannot launch {self.argv[0]!r}: {exc.strerror}") from None
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"{self.name}-output")
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None:
                self._reader.join(1)
                raise DriverError(f"{self.name}: exited with code {self.proc.returncode} before it was ready; "
                                  f"last output:\n{self.output()}")
            if time.monotonic() > deadline:
                self.stop(2)
                raise DriverError(f"{self.name}: not ready within {timeout:g} s (waiting for "
                                  f"/{self.ready.pattern}/ on its output); last output:\n{self.output()}")

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.tail.append(line.rstrip("\n"))
            if not self._ready.is_set() and self.ready.search(line):
                self._ready.set()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return "\n".join(self.tail)

    def stop(self, timeout: float = 5.0) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        if self._reader is not None:
            self._reader.join(1)


def wait_accepting(host: str, port: int, timeout: float, name: str = "dut") -> None:
    """Wait (bounded) until host:port accepts a TCP connection: a program may print its ready
    line once its UDP socket is bound, a moment before its TCP listener is up (Kamailio does)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(max(0.05, min(0.5, deadline - time.monotonic())))
            try:
                s.connect((host, port))
                return
            except OSError as exc:
                error = exc
        if time.monotonic() >= deadline:
            raise DriverError(f"{name}: ready, but {host}:{port} accepts no TCP connection within {timeout:g} s "
                              f"({error}); is the launch command listening on the profile's transport?")
        time.sleep(0.02)


def expand(argv: list[str], **values: str) -> list[str]:
    """Fill {port}, {host}, {python}, {profile_dir}, {repo}, {transport} (and on TLS {tls_cert},
    {tls_key}) in launch arguments."""
    values.setdefault("python", sys.executable)
    values.setdefault("transport", "udp")
    values.setdefault("tls_cert", "")
    values.setdefault("tls_key", "")
    out = []
    for arg in argv:
        try:
            out.append(arg.format(**values))
        except (KeyError, IndexError, ValueError) as exc:
            raise DriverError(f"launch argument {arg!r}: unknown or malformed placeholder ({exc}); "
                              f"known: {', '.join('{' + k + '}' for k in sorted(values))}") from None
    return out
