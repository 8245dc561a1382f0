"""A fork server for the reference phone: consoles started in milliseconds instead of ~80 ms.

Starting the console costs mostly the interpreter and its imports (pjsua2 among them), the same
for every instance; a run starts one instance per test. The zygote is one process per test
process that has done those imports once and forks a console per request; the child sets up
its own pjsip (nothing of pjsip exists before the fork), so every DUT is still a fresh process
that shares no state with another.

    python -m referee.dut.refphone.zygote --socket PATH

Protocol, on an AF_UNIX SOCK_SEQPACKET socket, one connection per console:
    client -> zygote   {"argv": [console arguments]}  with the pty's slave end and the client
                       thread's network namespace (SCM_RIGHTS): the console runs in that one
    zygote -> client   {"pid": N}  or  {"error": "..."}
    zygote -> client   {"exit": <wait status>}  when the console has ended
A client that closes its connection has its console killed (SIGKILL). The zygote ends, killing
its consoles, when its standard input closes: the process that started it is gone.

`Zygote` (the client side) starts the server and hands out `ForkedConsole`s: pexpect objects
on the pty's master end, with the process control (pid, isalive, kill, exit status) of a child.
"""

from __future__ import annotations

import atexit
import ctypes
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import threading

import pexpect
import pexpect.fdpexpect

START_TIMEOUT = 15.0     # seconds for the zygote itself to be ready
REPLY_TIMEOUT = 5.0      # seconds for the pid of a forked console


# -- the server ---------------------------------------------------------------------------------

def serve(path: str) -> int:
    from . import console           # the imports every console needs, done once here

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    consoles: dict[socket.socket, int | None] = {}
    print("READY", flush=True)
    try:
        while True:
            readable = select.select([listener, sys.stdin, wake_r, *consoles], [], [])[0]
            if sys.stdin in readable and not os.read(sys.stdin.fileno(), 1024):
                return 0                                  # the owner is gone
            if wake_r in readable:
                os.read(wake_r, 1024)
            _reap(consoles)
            if listener in readable:
                conn, _ = listener.accept()
                consoles[conn] = None
            for conn in [c for c in readable if c in consoles]:
                try:
                    message, fds, _, _ = socket.recv_fds(conn, 65536, 2)
                except OSError:
                    message, fds = b"", []
                if not message:                           # the client let go of its console
                    _kill(consoles.pop(conn))
                    conn.close()
                    continue
                if consoles[conn] is not None or len(fds) not in (1, 2):
                    for fd in fds:
                        os.close(fd)
                    conn.send(json.dumps({"error": "one request with one pty per connection"}).encode())
                    continue
                pid = _fork_console(console, json.loads(message)["argv"], fds, listener, consoles, (wake_r, wake_w))
                for fd in fds:
                    os.close(fd)
                consoles[conn] = pid
                conn.send(json.dumps({"pid": pid}).encode())
    finally:
        for pid in consoles.values():
            _kill(pid)


def _reap(consoles: dict[socket.socket, int | None]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        for conn, owned in consoles.items():
            if owned == pid:
                consoles[conn] = -pid                     # ended (and reported)
                try:
                    conn.send(json.dumps({"exit": status}).encode())
                except OSError:
                    pass


_CLONE_NEWNET = 0x40000000


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _kill(pid: int | None) -> None:
    if pid is not None and pid > 0:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _fork_console(console, argv: list[str], fds: list[int], listener, consoles, wake: tuple[int, int]) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:         # the child: a console on the pty, in a session of its own (as pexpect.spawn does)
        slave, netns = fds[0], (fds[1] if len(fds) > 1 else None)
        if netns is not None:     # the network namespace of the thread that asked
            if os.fstat(netns).st_ino != os.stat("/proc/self/ns/net").st_ino \
                    and _libc().setns(netns, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns: {os.strerror(ctypes.get_errno())}")
            os.close(netns)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        listener.close()
        for conn in consoles:
            conn.close()
        for fd in wake:
            os.close(fd)
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        os.close(slave)
        code = console.main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:        # noqa: BLE001 - reported on the console's output
        import traceback
        traceback.print_exc()
    finally:
        sys.stderr.flush()
        os._exit(code)


def main(argv: list[str] | None = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m referee.dut.refphone.zygote", description=__doc__.split("\n\n")[0])
    ap.add_argument("--socket", required=True, help="path of the AF_UNIX socket to serve on")
    return serve(ap.parse_args(argv).socket)


# -- the client ---------------------------------------------------------------------------------

class ZygoteError(RuntimeError):
    """The zygote could not be started or did not fork a console."""


class ForkedConsole(pexpect.fdpexpect.fdspawn):
    """A console forked by the zygote: pexpect on the pty's master end, and process control as
    for a child of ours (`pid`, `isalive`, `kill`, `exitstatus`, `signalstatus`)."""

    def __init__(self, master: int, pid: int, conn: socket.socket) -> None:
        super().__init__(master, encoding="utf-8", codec_errors="replace", timeout=None)
        self.delaybeforesend = None       # the console reads whole lines whenever they come
        self.pid = pid
        self._conn = conn
        self._status: int | None = None
        conn.setblocking(False)

    def isalive(self) -> bool:
        """Whether the console still runs; once it has ended, `exitstatus` or `signalstatus`
        says how (as pexpect.spawn's do)."""
        if self._status is None and self._conn is not None:
            try:
                data = self._conn.recv(4096)
            except BlockingIOError:
                return True
            except OSError:
                data = b""
            if not data:                  # the zygote is gone: ask the system
                try:
                    os.kill(self.pid, 0)
                    return True
                except ProcessLookupError:
                    return False
            self._status = status = json.loads(data)["exit"]
            if os.WIFSIGNALED(status):
                self.signalstatus = os.WTERMSIG(status)
            else:
                self.exitstatus = os.waitstatus_to_exitcode(status)
        return self._status is None

    def kill(self, sig: int) -> None:
        if self.isalive():
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass

    def close(self, force: bool = True) -> None:
        if not self.closed:
            super().close()
        if self._conn is not None:
            self._conn.close()            # (the zygote kills a console still running)
            self._conn = None


class Zygote:
    """The zygote of this process (`get`), started on first use."""

    _lock = threading.Lock()
    _instance: "Zygote | None" = None

    def __init__(self, env: dict[str, str]) -> None:
        self.dir = tempfile.mkdtemp(prefix="referee-zygote-")
        self.path = os.path.join(self.dir, "zygote.sock")
        self.log = os.path.join(self.dir, "zygote.log")
        command = [sys.executable, "-m", "referee.dut.refphone.zygote", "--socket", self.path]
        if not in_process_netns():      # (asked from a thread that joined another namespace)
            command = ["nsenter", f"--net=/proc/{os.getpid()}/ns/net", "--", *command]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(command,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                         env=env, start_new_session=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT)
        line = self.proc.stdout.readline() if ready else b""
        if line.strip() != b"READY":
            self.close(keep_log=True)
            with open(self.log, "rb") as log:
                output = log.read(4000).decode(errors="replace")
            shutil.rmtree(self.dir, ignore_errors=True)
            raise ZygoteError(f"the refphone zygote did not start (printed {line!r}, exit {self.proc.poll()}): "
                              f"{output}")
        atexit.register(self.close)

    @classmethod
    def get(cls, env: dict[str, str]) -> "Zygote":
        with cls._lock:
            if cls._instance is None or cls._instance.proc.poll() is not None:
                cls._instance = cls(env)
            return cls._instance

    def spawn(self, argv: list[str]) -> ForkedConsole:
        """A console with these arguments, forked now, on a new pty without echo, in the network
        namespace of the calling thread."""
        master, slave = os.openpty()
        fds = [slave]
        try:
            fds.append(os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC))
            attrs = termios.tcgetattr(slave)
            attrs[3] &= ~termios.ECHO
            termios.tcsetattr(slave, termios.TCSANOW, attrs)
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            conn.settimeout(REPLY_TIMEOUT)
            try:
                conn.connect(self.path)
                socket.send_fds(conn, [json.dumps({"argv": argv}).encode()], fds)
                reply = json.loads(conn.recv(4096) or b"{}")
            except (OSError, ValueError) as exc:
                conn.close()
                raise ZygoteError(f"the refphone zygote did not fork a console: {exc}") from None
        except BaseException:
            os.close(master)
            raise
        finally:
            for fd in fds:
                os.close(fd)
        if "pid" not in reply:
            conn.close()
            os.close(master)
            raise ZygoteError(f"the refphone zygote did not fork a console: {reply.get('error', 'no answer')}")
        return ForkedConsole(master, reply["pid"], conn)

    def close(self, keep_log: bool = False) -> None:
        """End the zygote (it kills the consoles it forked that still run)."""
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if not keep_log:
            shutil.rmtree(self.dir, ignore_errors=True)


def in_process_netns() -> bool:
    """Is the calling thread in its process's network namespace (where the zygote runs)?"""
    try:
        return os.readlink("/proc/thread-self/ns/net") == os.readlink("/proc/self/ns/net")
    except OSError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
