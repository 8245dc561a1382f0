"""The reporting plugin's behaviour at the edges, on small pytest projects run in a subprocess:
pytest-xdist (the controller writes, from what the workers forwarded), a crashed worker, a setup
error, an interrupted run, --should-as-warning, and runs that are not conformance runs."""

from __future__ import annotations

import json
import pathlib

import junitparser
from lxml import html as lxml_html

from report_helpers import QUIET_PLUGINS, python, run_command, schema_errors

PROJECT = '''
import os

import pytest


def requirement(record_property, purpose, level, role="transferee", rfc="RFC 3515", section="2.4.5"):
    for key, value in (("test_purpose", purpose), ("rfc", rfc), ("section", section), ("level", level),
                       ("role", role), ("title", f"title of {purpose}")):
        record_property(key, value)


@pytest.fixture
def dut_down(record_property):
    requirement(record_property, "SY-ERR-001", "MUST")
    raise RuntimeError("the DUT did not start")


def test_must_met(record_property):
    requirement(record_property, "SY-MUST-001", "MUST")


def test_should_not_met(record_property):
    requirement(record_property, "SY-SHOULD-001", "SHOULD", rfc="RFC 5589", section="5")
    pytest.fail("the final NOTIFY came before the target answered", pytrace=False)


def test_setup_error(dut_down):
    pass


def test_known_failure(record_property, request):
    requirement(record_property, "SY-KNOWN-001", "MUST")
    record_property("known_failure", "omits the Event id")
    request.applymarker(pytest.mark.xfail(reason="known DUT deviation: omits the Event id", strict=True))
    pytest.fail("Event: refer has no id", pytrace=False)


def test_not_applicable():
    pytest.skip("'phone' does not declare the role 'transferor'")


def test_worker_crash(record_property):
    requirement(record_property, "SY-CRASH-001", "MUST", role="transferor")
    os._exit(3)


def test_zz_interrupt(record_property):
    requirement(record_property, "SY-STOP-001", "MUST")
    raise KeyboardInterrupt
'''


def _project(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "project"
    path.mkdir()
    (path / "test_synthetic.py").write_text(PROJECT)
    return path


def _pytest(project: pathlib.Path, report_dir: pathlib.Path, *args: str):
    return run_command([python(), "-m", "pytest", *QUIET_PLUGINS, "-p", "fixtures.plugin",
                        "-p", "fixtures.reporting", f"--report-dir={report_dir}", "-q", *args, str(project)],
                       cwd=project)


def _tests(report_dir: pathlib.Path) -> dict[str, dict]:
    results = json.loads((report_dir / "results.json").read_text())
    return {t["nodeid"].split("::")[-1]: t for t in results["tests"]}


def test_xdist_controller_writes_everything_the_workers_ran(tmp_path):
    project, out = _project(tmp_path), tmp_path / "reports"
    done = _pytest(project, out, "-n", "2", "-k", "not interrupt")
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    tests = _tests(out)
    assert set(tests) == {"test_must_met", "test_should_not_met", "test_setup_error", "test_known_failure",
                          "test_not_applicable", "test_worker_crash"}
    assert len({t["worker"] for t in tests.values()}) >= 2          # reports of both workers, merged
    assert tests["test_must_met"]["verdict"] == "passed"
    should = tests["test_should_not_met"]
    assert should["verdict"] == "failed" and should["requirement"]["level"] == "SHOULD"
    assert should["message"] == "the final NOTIFY came before the target answered"
    error = tests["test_setup_error"]
    assert error["verdict"] == "error" and error["test_purpose"] == "SY-ERR-001"
    assert "the DUT did not start" in error["message"] and error["message"].startswith("error in test setup")
    known = tests["test_known_failure"]
    assert known["verdict"] == "known_failure" and known["known_failure"] == "omits the Event id"
    crash = tests["test_worker_crash"]
    assert crash["verdict"] == "error" and "crashed" in crash["message"]
    na = tests["test_not_applicable"]
    assert na["verdict"] == "skipped" and na["message"] == "'phone' does not declare the role 'transferor'"
    # the certification: SHOULD failure as a failure, valid for Jenkins
    cert = out / "certification.xml"
    assert schema_errors(cert) == []
    suites = list(junitparser.JUnitXml.fromfile(str(cert)))
    rfc5589 = next(s for s in suites if s.name == "RFC 5589")
    (case,) = list(rfc5589)
    (failure,) = case.result
    assert isinstance(failure, junitparser.Failure) and failure.type == "SHOULD"
    assert failure.message == "RFC 5589 §5 SHOULD not met: the final NOTIFY came before the target answered"
    errors = [c for s in suites if s.name == "RFC 3515" for c in s if c.name.startswith("SY-ERR-001")]
    assert isinstance(errors[0].result[0], junitparser.Error)
    unclassified = next(s for s in suites if s.name == "unclassified")
    assert sorted(c.name for c in unclassified) == ["test_not_applicable", "test_worker_crash"]   # no properties
    assert (out / "index.html").is_file()


def test_interrupted_run_still_writes_reports_and_should_as_warning(tmp_path):
    project, out = _project(tmp_path), tmp_path / "reports"
    done = _pytest(project, out, "-k", "not crash", "--should-as-warning")
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]     # interrupted
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["interrupted"] is True and results["run"]["should_as_warning"] is True
    tests = _tests(out)
    stopped = tests["test_zz_interrupt"]
    assert stopped["verdict"] == "error" and "did not finish" in stopped["message"]
    assert tests["test_must_met"]["verdict"] == "passed"
    cert = out / "certification.xml"
    assert schema_errors(cert) == []
    suites = list(junitparser.JUnitXml.fromfile(str(cert)))
    (case,) = list(next(s for s in suites if s.name == "RFC 5589"))
    (skipped,) = case.result
    assert isinstance(skipped, junitparser.Skipped)
    assert skipped.message.startswith("warning: RFC 5589 §5 SHOULD not met: ")
    assert "level=SHOULD" in case.system_out and "verdict=failed" in case.system_out
    page = lxml_html.parse(str(out / "index.html")).getroot()
    assert "Run interrupted" in page.text_content()
    section = page.xpath("//details[@data-verdict='failed']")[0]
    assert section.xpath(".//span[contains(@class,'badge')]")[0].text == "WARNING"


def test_no_session_reports_without_test_purposes(tmp_path):
    """referee's own tests (no test purpose) leave no index.html, certification.xml or results.json."""
    project = tmp_path / "unit"
    project.mkdir()
    (project / "test_unit.py").write_text("def test_plain():\n    assert 1 + 1 == 2\n")
    out = tmp_path / "reports"
    done = _pytest(project, out)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (out / "results.json").exists() and not (out / "index.html").exists()
    assert "referee reports" not in done.stdout
