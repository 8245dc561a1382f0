"""A DUT for one test: from a profile to something the scenario runner can address and drive."""

from __future__ import annotations

import concurrent.futures
import pathlib
import shutil
import sys
import tempfile
import threading
import time

from .driver import TRANSPORTS, DriverError, PhoneDriver, ProgramMissing, TransportUnsupported, sip_uri
from .drivers import driver_class
from .launcher import LaunchedProcess, expand, free_port, wait_accepting
from .profile import Profile
from .programs import find_program
from .upper_profile import UPPER_DRIVERS

# (.tls is imported where certificates are made: it pulls in the TLS stack, and every launched
# reference phone imports this module on its way to its console)

REPO = pathlib.Path(__file__).resolve().parents[2]
PORT_ATTEMPTS = 3         # starts of a launched DUT on a fresh free port when the last one was taken


class DutSession:
    """Implements referee.scenario.DutEndpoint for a profile: external, launched or driven.

    `transport` picks one of the profile's `transports` (default: the first). The DUT is made
    to listen on it, the agents bound to this session speak it (`agent_tls()` gives them their
    TLS contexts), and the URIs built for the DUT carry it (`;transport=tcp|tls`).
    """

    def __init__(self, profile: Profile, transport: str | None = None) -> None:
        transport = transport or profile.transport
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, got {transport!r}")
        self.profile = profile
        self.name = profile.name
        self.kind = profile.kind
        self.transport = transport
        self.driver: PhoneDriver | None = None
        self.process: LaunchedProcess | None = None
        self.address: tuple[str, int] = profile.address or ("127.0.0.1", 0)
        self.started = False
        self.policy = None      # the DestinationPolicy agents must obey (set by the plugin)
        self.certificates = None   # TestCertificates of a TLS session (made in start())
        self._cert_dir: str | None = None

    # -- before anything starts ------------------------------------------------------------------
    def preflight(self) -> None:
        """Check, without starting anything, that this DUT can be launched on this transport.

        Raises TransportUnsupported (the profile does not list the transport, or the driver
        cannot make its product listen on it) or ProgramMissing (the driver's program, the
        launch command's program or a program of `requires` is not installed), each with one
        message that names the fix."""
        p = self.profile
        if self.transport not in p.transports:
            raise TransportUnsupported(
                f"{p.path}: DUT {p.name!r} is not declared for {self.transport.upper()}: its profile lists "
                f"{', '.join(p.transports)} (fix: add {self.transport!r} to `transports` if the DUT listens "
                f"on it, or run with one of those)")
        if p.driver and p.driver != "console":
            cls = driver_class(p.driver)
            cls.check_transport(self.transport)
            cls.find_program()
        if p.launch:
            self._launch_program()
        for program in p.requires:
            find_program(program)

    def _launch_program(self) -> str:
        """Absolute path of the launch command's program (PATH, then the sbin directories)."""
        first = self.profile.launch[0]
        program = sys.executable if first == "{python}" else first
        if "{" in program:
            raise ProgramMissing(f"{self.profile.path}: key 'launch': the program {first!r} must be a "
                                 f"name, a path or {{python}}, not a placeholder")
        try:
            return find_program(program)
        except ProgramMissing as exc:
            raise ProgramMissing(f"{self.profile.path}: key 'launch': {exc}") from None

    # -- life cycle --------------------------------------------------------------------------------
    def start(self) -> "DutSession":
        self.preflight()
        p = self.profile
        try:
            if self.transport == "tls":
                self._make_certificates()
            if p.driver:
                self._start_driver()
            elif p.launch:   # a launched DUT the suite addresses but does not drive
                self._start_launched()
        except BaseException:
            self.stop()
            raise
        self.started = True
        return self

    def _start_driver(self) -> None:
        p = self.profile
        host = p.address[0] if p.address else "127.0.0.1"
        port = p.address[1] if p.address else 0
        cls = driver_class(p.driver)
        kwargs = {"host": host, "port": port, "user": p.user or "dut", "transport": self.transport}
        if self.certificates is not None:
            kwargs["certificates"] = self.certificates
        if p.answers == "manual":
            kwargs["answer"] = "manual"
        if getattr(cls, "needs_profile", False):
            kwargs["profile"] = p        # upper testers: the profile's [actions] say how to ask
        if p.driver == "console":
            launch = [a.replace("{repo}", str(REPO)).replace("{profile_dir}", str(p.path.parent.resolve()))
                      for a in p.launch]
            launch[0] = launch[0] if launch[0] == "{python}" else self._launch_program()
            kwargs.update(launch=launch, capabilities=frozenset(p.capabilities), transports=tuple(p.transports))

        def start() -> None:
            self.driver = cls(**kwargs)          # a fresh driver picks a fresh free port
            self.driver.start(timeout=p.ready_timeout)
        _retry_taken_port(start, fixed=bool(port))
        self.address = (self.driver.host, self.driver.port)

    def _start_launched(self) -> None:
        p = self.profile
        host = p.address[0] if p.address else "127.0.0.1"
        fixed = bool(p.address and p.address[1])

        def start() -> int:
            port = p.address[1] if fixed else free_port(host)
            self.process = LaunchedProcess(self.launch_command(host, port), p.ready, name=p.name, cwd=str(REPO))
            self.process.start(p.ready_timeout)
            return port
        port = _retry_taken_port(start, fixed)
        if self.transport != "udp" or set(p.transports) - {"udp"}:
            # the ready line may come before the TCP listener is up (a test may use it even when the
            # session's transport is UDP: a party of its own on TCP)
            wait_accepting(host, port, p.ready_timeout, name=p.name)
        self.address = (host, port)

    def launch_command(self, host: str, port: int) -> list[str]:
        """The profile's `launch` command for host:port on this session's transport, its program
        resolved to an absolute path (kamailio lives in /usr/sbin, not on every PATH)."""
        p = self.profile
        certs = self.certificates
        argv = expand(p.launch, host=host, port=str(port), profile_dir=str(p.path.parent.resolve()),
                      repo=str(REPO), transport=self.transport,
                      tls_cert=str(certs.cert_file) if certs else "", tls_key=str(certs.key_file) if certs else "")
        if p.launch[0] != "{python}":
            argv[0] = self._launch_program()
        return argv

    def stop(self) -> None:
        if self.driver is not None:
            self.driver.stop(timeout=self.profile.stop_timeout)
        if self.process is not None:
            self.process.stop(self.profile.stop_timeout)
        if self._cert_dir is not None:
            shutil.rmtree(self._cert_dir, ignore_errors=True)
            self._cert_dir = None
        self.started = False

    def alive(self) -> bool:
        if self.driver is not None:
            return self.driver.alive()
        if self.process is not None:
            return self.process.alive()
        return True

    def output(self) -> str:
        """Recent console output of a launched DUT (for reports)."""
        if self.process is not None:
            return self.process.output()
        if self.driver is not None:
            tail = getattr(self.driver, "output_tail", None)
            return tail() if callable(tail) else ""
        return ""

    # -- what the agents need ----------------------------------------------------------------------
    def agent_tls(self) -> dict:
        """Keyword arguments for Agent.start on this session's transport: the TLS contexts on
        TLS (the agents present the session's test certificate and do not verify the DUT's),
        nothing otherwise."""
        if self.transport != "tls":
            return {}
        if self.certificates is None:     # not started (e.g. a probe of an external DUT)
            self._make_certificates()
        from .tls import agent_contexts
        return agent_contexts(self.certificates)

    def _make_certificates(self) -> None:
        """Test certificates for this session (the DUT's TLS server and the agents'), in a
        directory removed by stop()."""
        from .tls import make_certificates
        if self._cert_dir is None:
            self._cert_dir = tempfile.mkdtemp(prefix="referee-tls-")
        self.certificates = make_certificates(pathlib.Path(self._cert_dir))

    # -- addresses ---------------------------------------------------------------------------------
    def uri_for(self, role: str) -> str:
        host, port = self.address
        user = (self.profile.user or role) if self.kind == "phone" else None
        return sip_uri(user, host, port, self.transport)

    def user_aor(self, user_name: str) -> str:
        """A PBX/proxy user's address of record: its extension at the DUT (or its domain), with
        ;transport=tcp|tls when the session is not on UDP."""
        user = self.profile.users[user_name]
        host, port = self.address
        domain = self.profile.domain or (f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        suffix = "" if self.transport == "udp" else f";transport={self.transport}"
        return f"sip:{user.extension}@{domain}{suffix}"

    def __enter__(self) -> "DutSession":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# the longest a retired DUT waits for its test's artifacts before it is stopped anyway
FINISH_TIMEOUT = 30.0


def _retry_taken_port(start, fixed: bool):
    """`start()` picks a free port and starts the DUT on it; call it again (up to PORT_ATTEMPTS
    times) while it fails because that port was taken before the program bound it — another
    test's agent or DUT got it meanwhile. Any other failure, or a port the profile fixes, is
    raised at once. Returns what `start` returns."""
    for attempt in range(PORT_ATTEMPTS):
        try:
            return start()
        except DriverError as exc:         # its text carries the program's last output
            if fixed or attempt == PORT_ATTEMPTS - 1 or "already in use" not in str(exc).lower():
                raise


def launches_instances(profile: Profile) -> bool:
    """Does the suite launch a DUT instance of its own for every test (a program it starts on a
    free port), rather than address one device all tests share?"""
    if profile.driver in UPPER_DRIVERS:        # a person, an HTTP API or a command drives a device
        return False
    return bool(profile.driver or profile.launch)


def poolable(profile: Profile) -> bool:
    """Can several instances of this DUT run at once (and so be started ahead of their tests)?
    Not when the profile pins the DUT's port, nor when its users listen on fixed ports."""
    return (launches_instances(profile) and not (profile.address and profile.address[1])
            and not any(u.port for u in profile.users.values()))


class DutPool:
    """DUT instances of one profile, started ahead of the tests of this process.

    Starting a launched DUT takes a few hundred milliseconds; tests should not wait for it. A
    test takes a session that started while earlier tests ran (`take`), and `spares` others keep
    starting behind it. A taken session is never handed out again: `retire` stops it in the
    background once its test is done with it (every test sees a DUT no other test has used).
    `close` stops everything; every wait is bounded by the profile's ready and stop timeouts.

    The threads that start DUTs live as long as the pool: a launched DUT is bound to the thread
    that started it (PR_SET_PDEATHSIG, see launcher.py) and must not die with a short one."""

    def __init__(self, profile: Profile, spares: int = 1) -> None:
        self.profile = profile
        self.spares = spares
        self._lock = threading.Lock()
        self._ready: dict[str, list[tuple[DutSession, concurrent.futures.Future]]] = {}
        self._stopping: list[threading.Thread] = []
        self._closed = False
        # two starts at a time: the processor, not the number of threads, limits how fast DUTs start
        self._starter = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="referee-dut-start")

    def start(self, session: DutSession) -> concurrent.futures.Future:
        """Start `session` in one of the pool's threads."""
        return self._starter.submit(session.start)

    def adopt(self, session: DutSession) -> None:
        """A session started elsewhere (e.g. a trial start, in a thread that lives as long as the
        pool) is the next one handed out."""
        started: concurrent.futures.Future = concurrent.futures.Future()
        started.set_result(None)
        with self._lock:
            self._ready.setdefault(session.transport, []).insert(0, (session, started))

    def prepare(self, transport: str | None = None, count: int | None = None) -> None:
        """Start `count` (default: all) spares of `transport` (default: the profile's first) now."""
        with self._lock:
            self._top_up(transport or self.profile.transport, count)

    def take(self, transport: str | None = None) -> DutSession:
        """A started session on `transport`; raises what its start raised (DriverError ...)."""
        transport = transport or self.profile.transport
        with self._lock:
            queue = self._ready.setdefault(transport, [])
            if queue:
                session, started = queue.pop(0)
            else:
                session = DutSession(self.profile, transport=transport)
                started = self.start(session)
            self._top_up(transport)
        timeout = self.profile.ready_timeout + 5.0
        try:
            started.result(timeout)
        except concurrent.futures.TimeoutError:
            started.add_done_callback(lambda _: session.stop())    # whenever it is up after all
            raise DriverError(f"{self.profile.name!r} did not start within {timeout:g} s") from None
        return session

    def _top_up(self, transport: str, count: int | None = None) -> None:
        if self._closed:
            return
        queue = self._ready.setdefault(transport, [])
        while len(queue) < min(self.spares, self.spares if count is None else count):
            session = DutSession(self.profile, transport=transport)
            queue.append((session, self.start(session)))

    def retire(self, session: DutSession, after: threading.Thread | None = None,
               started: concurrent.futures.Future | None = None) -> None:
        """Stop `session` in the background, once `after` (what still uses it) has ended, or once
        its start (`started`) has returned."""
        def stop() -> None:
            if after is not None:
                after.join(FINISH_TIMEOUT)
            if started is not None:
                concurrent.futures.wait([started], self.profile.ready_timeout + 5.0)
            session.stop()
        thread = threading.Thread(target=stop, name="referee-dut-stop", daemon=True)
        thread.start()
        with self._lock:
            self._stopping = [t for t in self._stopping if t.is_alive()] + [thread]

    def close(self) -> None:
        """Stop the spares, wait for every stop (bounded), then end the pool's threads."""
        with self._lock:
            self._closed = True
            spares = [s for queue in self._ready.values() for s in queue]
            self._ready.clear()
        for session, started in spares:
            started.cancel()            # (not yet begun: it never will)
            self.retire(session, started=started)
        deadline = time.monotonic() + self.profile.ready_timeout + FINISH_TIMEOUT + self.profile.stop_timeout + 10.0
        with self._lock:
            stopping = list(self._stopping)
        for thread in stopping:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._starter.shutdown(wait=False, cancel_futures=True)


__all__ = ["DutSession", "DutPool", "DriverError", "launches_instances", "poolable"]
