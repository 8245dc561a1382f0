"""A DUT for one test: from a profile to something the scenario runner can address and drive."""

from __future__ import annotations

import pathlib

from .driver import DriverError, PhoneDriver
from .drivers import driver_class
from .launcher import LaunchedProcess, expand, free_port
from .profile import Profile

REPO = pathlib.Path(__file__).resolve().parents[2]


class DutSession:
    """Implements referee.scenario.DutEndpoint for a profile: external, launched or driven."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.name = profile.name
        self.kind = profile.kind
        self.transport = profile.transport
        self.driver: PhoneDriver | None = None
        self.process: LaunchedProcess | None = None
        self.address: tuple[str, int] = profile.address or ("127.0.0.1", 0)
        self.started = False
        self.policy = None      # the DestinationPolicy agents must obey (set by the plugin)

    def start(self) -> "DutSession":
        p = self.profile
        if p.driver:
            host = p.address[0] if p.address else "127.0.0.1"
            port = p.address[1] if p.address else 0
            cls = driver_class(p.driver)
            kwargs = {"host": host, "port": port, "user": p.user or "dut"}
            if p.answers == "manual":
                kwargs["answer"] = "manual"
            if p.driver == "console":
                kwargs.update(launch=[a.replace("{repo}", str(REPO)).replace("{profile_dir}", str(p.path.parent.resolve()))
                                      for a in p.launch], capabilities=frozenset(p.capabilities))
            self.driver = cls(**kwargs)
            self.driver.start(timeout=p.ready_timeout)
            self.address = (self.driver.host, self.driver.port)
        elif p.launch:   # a launched DUT the suite addresses but does not drive
            host = p.address[0] if p.address else "127.0.0.1"
            port = p.address[1] if p.address else free_port(host)
            argv = expand(p.launch, host=host, port=str(port), profile_dir=str(p.path.parent.resolve()),
                          repo=str(REPO))
            self.process = LaunchedProcess(argv, p.ready, name=p.name, cwd=str(REPO))
            self.process.start(p.ready_timeout)
            self.address = (host, port)
        self.started = True
        return self

    def stop(self) -> None:
        if self.driver is not None:
            self.driver.stop(timeout=self.profile.stop_timeout)
        if self.process is not None:
            self.process.stop(self.profile.stop_timeout)
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

    def uri_for(self, role: str) -> str:
        host, port = self.address
        hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        suffix = "" if self.transport == "udp" else f";transport={self.transport}"
        if self.kind == "phone":
            return f"sip:{self.profile.user or role}@{hostport}{suffix}"
        return f"sip:{hostport}{suffix}"

    def user_aor(self, user_name: str) -> str:
        """A PBX/proxy user's address of record: its extension at the DUT (or its domain)."""
        user = self.profile.users[user_name]
        host, port = self.address
        domain = self.profile.domain or f"{host}:{port}"
        return f"sip:{user.extension}@{domain}"

    def __enter__(self) -> "DutSession":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


__all__ = ["DutSession", "DriverError"]
