"""The load suite run as a user runs it: `referee run -m load` against Kamailio, in a subprocess.

A short run must pass and leave load-junit.xml (valid JUnit, one test case per step, the
figures as properties); a latency bound no DUT can meet, and a proxy that loses Referred-By,
must each fail the step; a run without bounds must be refused before anything starts.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
from junitparser import JUnitXml

from tests.programs import require_program

REPO = pathlib.Path(__file__).resolve().parents[2]
LOAD_SUITE = REPO / "suites" / "load"
KAMAILIO = REPO / "duts" / "kamailio.toml"
FAULTY_PROXY = REPO / "tests" / "faulty" / "proxy.py"
XSD = REPO / "tests" / "report" / "jenkins-junit-10.xsd"


@pytest.fixture(autouse=True)
def _programs():
    """The load suite drives SIPp through Kamailio: both must be installed (./install.sh)."""
    require_program("sipp")
    require_program("kamailio")


def referee_load(report_dir: pathlib.Path, *args: str, timeout: float = 150) -> subprocess.CompletedProcess:
    """`referee run -m load ... suites/load ARGS` (naming the suite makes its --load-* options known)."""
    command = [sys.executable, "-m", "referee.cli", "run", "-m", "load", "--report-dir", str(report_dir),
               str(LOAD_SUITE), *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def load_steps(report_dir: pathlib.Path) -> dict[str, tuple[dict[str, str], object]]:
    """step name -> (its properties, its one test case), from load-junit.xml."""
    path = report_dir / "load-junit.xml"
    assert path.is_file(), f"no {path}"
    _assert_schema_valid(path)
    steps = {}
    for suite in JUnitXml.fromfile(str(path)):
        cases = list(suite)
        assert len(cases) == 1, f"{suite.name}: {len(cases)} test cases, expected one per step"
        steps[cases[0].name] = ({p.name: p.value for p in suite.properties()}, cases[0])
    return steps


def _assert_schema_valid(path: pathlib.Path) -> None:
    try:
        from lxml import etree
    except ImportError:
        return
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    assert schema.validate(etree.parse(str(path))), [f"line {e.line}: {e.message}" for e in schema.error_log]


@pytest.mark.timeout(180)
def test_short_load_run_through_kamailio_passes_with_its_figures(tmp_path: pathlib.Path) -> None:
    report = tmp_path / "reports"
    result = referee_load(report, "--dut", str(KAMAILIO), "--load-duration", "3")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]

    steps = load_steps(report)
    assert sorted(steps) == ["attended 20 cps", "blind 20 cps"]
    for name, (props, case) in steps.items():
        assert case.is_passed, f"{name}: {case.result}"
        assert props["dut"] == "Kamailio 5.6 record-routing proxy" and "dut_note" not in props
        assert float(props["rate_asked_cps"]) == 20
        assert 18 <= float(props["rate_achieved_cps"]) <= 22
        assert props["transfers_asked"] == props["transfers_completed"] == "60"
        assert props["calls_failed"] == "0" and float(props["failed_pct"]) == 0
        assert int(props["concurrent_calls_max"]) > 1
        assert props["refer_202_samples"] == props["final_notify_samples"] == "60"
        for figure in ("refer_202_p50_ms", "refer_202_p95_ms", "final_notify_p50_ms", "final_notify_p95_ms"):
            assert float(props[figure]) > 0, figure
        # the final NOTIFY comes after the 202 (same REFER, same transferor)
        assert float(props["final_notify_p50_ms"]) > float(props["refer_202_p50_ms"])
        assert props["agent_samples"] == props["agent_samples_passed"] == props["agent_samples_during_load"] == "3"
        assert float(props["criterion_max_failed_pct"]) == 0.1
        # the same figures are in the case's system-out, one name=value per line
        assert f"transfers_completed={props['transfers_completed']}" in case.system_out
    assert steps["attended 20 cps"][0]["sipp_target"] == "120/120 successful"   # consultation + replacing call

    # pytest's own JUnit has the steps too, with the figures as test case properties
    junit = JUnitXml.fromfile(str(report / "junit.xml"))
    cases = {case.name: case for suite in junit for case in suite}
    assert {"test_refer_load[blind-20cps]", "test_refer_load[attended-20cps]"} <= set(cases)
    # and every step left its SIPp files and the agents' traces
    for step in ("blind-20cps", "attended-20cps"):
        assert (report / "load" / step / "transferor" / "stats.csv").is_file()
        assert (report / "load" / step / "sample-1.json").is_file()


@pytest.mark.timeout(120)
def test_a_latency_bound_no_dut_meets_fails_the_step(tmp_path: pathlib.Path) -> None:
    # the transferee sends the final NOTIFY only after its call to the target is answered:
    # never within 1 ms of the REFER
    report = tmp_path / "reports"
    result = referee_load(report, "--dut", str(KAMAILIO), "-k", "blind", "--load-duration", "2",
                          "--load-rate", "10", "--load-samples", "1", "--load-p95-notify-ms", "1")
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-2000:]
    props, case = load_steps(report)["blind 10 cps"]
    assert not case.is_passed
    assert "REFER -> final NOTIFY p95" in case.result[0].message and "> 1 ms" in case.result[0].message
    assert props["calls_failed"] == "0" and props["transfers_completed"] == "20"   # only the bound failed
    assert "REFER -> final NOTIFY p95" in result.stdout


@pytest.mark.timeout(120)
def test_a_proxy_that_loses_referred_by_under_load_fails_the_step(tmp_path: pathlib.Path) -> None:
    profile = tmp_path / "proxy-strips-referred-by.toml"
    profile.write_text('name = "proxy losing Referred-By"\nkind = "proxy"\n'
                       f'launch = ["{{python}}", "{FAULTY_PROXY}", "--host", "{{host}}", "--port", "{{port}}", '
                       '"--faults", "strip_referred_by"]\nready = "READY"\n')
    report = tmp_path / "reports"
    result = referee_load(report, "--dut", str(profile), "-k", "blind", "--load-duration", "2",
                          "--load-rate", "10", "--load-samples", "1")
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-2000:]
    props, case = load_steps(report)["blind 10 cps"]
    message = case.result[0].message
    # the SIPp target requires Referred-By: every one of its calls failed ...
    assert props["sipp_target"] == "0/20 successful" and float(props["failed_pct"]) == 25.0
    assert "SIPp calls failed or did not complete" in message
    # ... and the agent's sample names the header it missed
    assert props["agent_samples_passed"] == "0"
    assert "agent sample transfers failed" in message and "Referred-By" in message


@pytest.mark.timeout(60)
@pytest.mark.parametrize("args, says", [
    (("--load-duration", "0"), "argument --load-duration: duration (s) must be > 0"),
    (("--load-rate", "0"), "argument --load-rate: call rate (cps) must be > 0"),
    (("--load-rate", "1000", "--load-duration", "100"), "would start 100000 calls, more than --load-max-calls"),
])
def test_a_run_without_bounds_is_refused(tmp_path: pathlib.Path, args, says) -> None:
    report = tmp_path / "reports"
    result = referee_load(report, "--dut", str(KAMAILIO), *args, timeout=50)
    assert result.returncode >= 2, result.stdout[-2000:]
    assert says in result.stdout + result.stderr
    assert not (report / "load").exists()          # no step started
