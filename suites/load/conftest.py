"""Fixtures of the load suite: its settings, the DUT under load, the load JUnit report.

The --load-* options are registered here; pytest only reads options of the conftest files it
finds before parsing the command line, so name the suite on the command line
(`referee run -m load suites/load --load-rate 50`) unless the options are registered globally
(see README.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

import load_junit
from load_options import LoadSettings, LoadSettingsError, add_load_options, resolve
from referee.dut import DutSession
from referee.dut.driver import DriverError
from referee.dut.kamailio import KamailioError, KamailioProxy

# the shared memory a launched Kamailio gets: transactions linger for seconds after each call
OWN_KAMAILIO_SHM_MB = 128
OWN_KAMAILIO_PKG_MB = 8


def pytest_addoption(parser: pytest.Parser) -> None:
    add_load_options(parser)


@pytest.fixture(scope="session")
def load_settings(pytestconfig) -> LoadSettings:
    """The run's settings; an unbounded or contradictory load run is refused before it starts."""
    try:
        return resolve(pytestconfig)
    except LoadSettingsError as exc:
        pytest.exit(f"referee load suite: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)


@dataclasses.dataclass
class LoadTarget:
    """The proxy the load goes through."""

    name: str
    address: tuple[str, int]
    note: str                      # how it was chosen, when it is not the selected DUT
    alive: Callable[[], bool]
    output: Callable[[], str]


@pytest.fixture
def load_dut(request, dut_profile):
    """The DUT of the profile when it is a proxy (launched for this step if the profile launches
    it); for a phone profile, a Kamailio proxy the suite launches itself (and says so)."""
    if dut_profile.kind == "pbx":
        pytest.skip(f"load through a PBX / B2BUA is not supported: {dut_profile.name!r} would need its "
                    f"users registered by every SIPp party; run the load suite with a proxy profile "
                    f"(e.g. --dut duts/kamailio.toml), or with a phone profile to load the suite's own Kamailio")
    if dut_profile.kind == "proxy":
        session = DutSession(dut_profile)
        session.policy = request.config.referee_policy
        try:
            session.start()
        except DriverError as exc:
            pytest.fail(f"DUT {dut_profile.name!r} did not start: {exc}", pytrace=False)
        try:
            yield LoadTarget(dut_profile.name, session.address, "", session.alive, session.output)
        finally:
            session.stop()
        return
    proxy = KamailioProxy(shm_mb=OWN_KAMAILIO_SHM_MB, pkg_mb=OWN_KAMAILIO_PKG_MB)
    try:
        proxy.start()
    except KamailioError as exc:
        pytest.fail(f"the selected DUT {dut_profile.name!r} is a {dut_profile.kind}, not a proxy, so the load "
                    f"suite launches its own Kamailio, which failed: {exc}", pytrace=False)
    note = (f"the selected DUT {dut_profile.name!r} is a {dut_profile.kind}, not a proxy: the load suite "
            f"launched its own Kamailio proxy ({proxy.cfg.name}) and put the load through it")
    try:
        yield LoadTarget("Kamailio (launched by the load suite)", proxy.address, note, proxy.alive, proxy.log)
    finally:
        proxy.stop()


class LoadReport:
    """The steps of this run, rewritten to load-junit.xml each time one ends."""

    def __init__(self, path) -> None:
        self.path = path
        self.records: list[load_junit.StepRecord] = []

    def add(self, record: load_junit.StepRecord) -> None:
        self.records.append(record)
        load_junit.write(self.path, self.records)


@pytest.fixture(scope="session")
def load_report(pytestconfig) -> LoadReport:
    worker = getattr(pytestconfig, "workerinput", {}).get("workerid")
    name = f"load-junit-{worker}.xml" if worker else "load-junit.xml"   # pytest-xdist: one file per worker
    return LoadReport(pytestconfig.referee_report_dir / name)
