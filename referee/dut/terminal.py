"""Where the operator reads the suite's instructions and types `s` to skip.

The controlling terminal (/dev/tty) when the run has one: pytest's output capture never
touches it, and it works the same in every process of the session. Without one (a run started
by a script, stdin a pipe), the process's own stdin and stdout, with pytest's capture suspended
while an action is in progress: `use_capture_manager` (called by the pytest plugin) hands over
pytest's capture manager for that. Reading never blocks: `poll` returns a line only once the
person has pressed Enter.
"""

from __future__ import annotations

import os
import select
import sys
import termios

_capture_manager = None      # pytest's CaptureManager, when running under pytest


def use_capture_manager(capture_manager) -> None:
    """Let the operator's prompts through pytest's output capture (None: forget it)."""
    global _capture_manager
    _capture_manager = capture_manager


class OperatorTerminal:
    """One exchange at a time: `begin(text)`, then `poll()` / `say(text)`, then `end(text)`."""

    def __init__(self, tty: str = "/dev/tty") -> None:
        self.tty = tty
        self._fd_in: int | None = None
        self._fd_out: int | None = None
        self._own_fd = False
        self._suspended = False
        self._pending = b""
        self.eof = False

    def describe(self) -> str:
        """Where the instructions go, or raise OSError when nowhere a person could see them."""
        try:
            fd = os.open(self.tty, os.O_RDWR | os.O_NOCTTY)
        except OSError:
            if _capture_manager is None and not os.isatty(1):
                raise OSError("no terminal (/dev/tty) and stdout is not a terminal: the operator "
                              "could not read the instructions (run referee from a terminal)") from None
            return "the run's standard output (no terminal)"
        os.close(fd)
        return self.tty

    def begin(self, text: str) -> None:
        self._open()
        self.say(text)

    def say(self, text: str) -> None:
        if self._fd_out is None:
            self._open()
        data = (text.rstrip("\n") + "\n").encode("utf-8", "replace")
        if self._own_fd:
            os.write(self._fd_out, data.replace(b"\n", b"\r\n"))
        else:
            sys.stdout.write(data.decode("utf-8"))
            sys.stdout.flush()

    def poll(self) -> str | None:
        """A line the person typed (without its newline), or None if none is complete yet."""
        if self._fd_in is None or self.eof:
            return None
        while b"\n" not in self._pending:
            try:
                readable, _, _ = select.select([self._fd_in], [], [], 0)
            except (OSError, ValueError):
                self.eof = True
                return None
            if not readable:
                return None
            try:
                chunk = os.read(self._fd_in, 1024)
            except OSError:
                chunk = b""
            if not chunk:
                self.eof = True
                return None
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode("utf-8", "replace").strip()

    def end(self, text: str = "") -> None:
        if text:
            self.say(text)
        self._close()

    # -- internals -------------------------------------------------------------------------------
    def _open(self) -> None:
        if self._fd_out is not None:
            return
        self._pending, self.eof = b"", False
        try:
            fd = os.open(self.tty, os.O_RDWR | os.O_NOCTTY)
        except OSError:
            fd = None
        if fd is not None:
            self._fd_in = self._fd_out = fd
            self._own_fd = True
            try:
                termios.tcflush(fd, termios.TCIFLUSH)     # what was typed before the instruction
            except termios.error:
                pass
            return
        if _capture_manager is not None:
            _capture_manager.suspend_global_capture(in_=True)
            self._suspended = True
        self._own_fd = False
        self._fd_out = 1
        try:
            self._fd_in = sys.stdin.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd_in, self.eof = None, True

    def _close(self) -> None:
        if self._own_fd and self._fd_out is not None:
            os.close(self._fd_out)
        if self._suspended and _capture_manager is not None:
            _capture_manager.resume_global_capture()
        self._fd_in = self._fd_out = None
        self._own_fd = self._suspended = False
