"""The session reports of a real `referee run` against a faulty DUT, checked as files and in a browser.

The DUT is tests/faulty/phone.py with the faults `refer_200` (it answers REFER with 200 OK
instead of 202), `no_notify` (it never sends a NOTIFY) and `bye_before_result` (it hangs up the
original call before the transfer's outcome is known), and a profile that lists TE-SUB-001 as a
known failure. Six test purposes run with pytest-xdist (-n 2): a MUST failure, a SHOULD failure,
an inconclusive one (no NOTIFY came, and NOTIFYs are a prerequisite of TE-NOTIFY-005), a known
failure, a pass, and one not applicable to this DUT (it does not play the transferor).
"""

from __future__ import annotations

import json
import pathlib
import re
import struct

import junitparser
import pytest
from lxml import etree
from lxml import html as lxml_html

from report_helpers import QUIET_PLUGINS, REPO, python, run_command, schema_errors

SVG = "{http://www.w3.org/2000/svg}"
KNOWN = "sends no NOTIFY after accepting a REFER (test fault)"
SELECTED = {"TE-BLIND-001": "failed", "TE-ORIG-001": "failed", "TE-NOTIFY-005": "inconclusive",
            "TE-SUB-001": "known_failure", "TE-REJECT-001": "passed", "TR-REFER-001": "skipped"}
PROFILE = f"""
name = "referee test phone (refer_200,no_notify)"
kind = "phone"
launch = ["{{python}}", "{REPO}/tests/faulty/phone.py", "--port", "{{port}}", "--faults", "refer_200,no_notify,bye_before_result"]
ready = "READY"
roles = ["transferee", "target"]
capabilities = ["transferee", "target", "replaces", "refer_sub"]

[known_failures]
TE-SUB-001 = "{KNOWN}"
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> pathlib.Path:
    base = tmp_path_factory.mktemp("referee-run")
    profile = base / "refer-200.toml"
    profile.write_text(PROFILE)
    out = base / "reports"
    done = run_command([python(), "-m", "referee.cli", "run", "--dut", str(profile), "--report-dir", str(out),
                        "-k", " or ".join(SELECTED), "-p", "fixtures.reporting", "-n", "2", *QUIET_PLUGINS])
    assert done.returncode == 1, f"expected failures (exit 1):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "referee reports: results.json, certification.xml, index.html" in done.stdout
    return out


@pytest.fixture(scope="module")
def results(run) -> dict:
    return json.loads((run / "results.json").read_text())


def _by_purpose(results: dict) -> dict[str, dict]:
    tests = {t["test_purpose"]: t for t in results["tests"]}
    missing = set(SELECTED) - set(tests)
    assert not missing, f"test purposes gone from the suites: {missing}"
    return tests


def test_results_json_verdicts(run, results):
    tests = _by_purpose(results)
    assert {tp: tests[tp]["verdict"] for tp in SELECTED} == SELECTED
    blind = tests["TE-BLIND-001"]
    assert blind["requirement"]["reference"] == "RFC 3515 §2.4.2 MUST"
    assert blind["title"] and blind["requirement"]["text"]
    assert "expected 202" in blind["message"] and "200 OK (CSeq 2 REFER)" in blind["message"]
    assert not blind["message"].startswith("[gw")
    assert [s["status"] for s in blind["steps"]][-1] == "failed"
    assert blind["messages"] > 0 and blind["worker"] in ("gw0", "gw1")
    for key in ("trace", "pcap", "ladder"):
        assert (run / blind["artifacts"][key]).is_file(), key
    assert tests["TE-ORIG-001"]["requirement"]["level"] == "SHOULD"
    assert tests["TE-NOTIFY-005"]["message"].startswith("INCONCLUSIVE")
    assert tests["TE-SUB-001"]["known_failure"] == KNOWN
    na = tests["TR-REFER-001"]
    assert "does not declare the role 'transferor'" in na["message"]
    assert na["role"] == "transferor" and na["requirement"]["rfc"] == "RFC 3515"     # known without running
    assert na["artifacts"]["trace"] is None
    assert tests["TE-REJECT-001"]["message"] == ""
    totals = results["totals"]
    assert totals == {"passed": 1, "failed": 2, "inconclusive": 1, "error": 0, "known_failure": 1, "unexpected_pass": 0,
                      "skipped": 1, "total": 6}
    must = [t for t in results["tests"] if t["requirement"]["level"] == "MUST" and t["verdict"] != "skipped"]
    assert results["levels"]["MUST"] == {"met": sum(t["verdict"] == "passed" for t in must),
                                         "applicable": len(must),
                                         "rate": round(sum(t["verdict"] == "passed" for t in must) / len(must), 4)}
    assert results["by_role"]["transferor"]["counts"]["skipped"] == 1
    assert results["by_rfc"]["RFC 3515"]["counts"]["total"] == sum(
        t["requirement"]["rfc"] == "RFC 3515" for t in results["tests"])
    assert results["run"]["dut"] == "referee test phone (refer_200,no_notify)" and results["run"]["exitstatus"] == 1
    assert results["run"]["interrupted"] is False


def _case(suites, suite_name: str, purpose: str):
    suite = next(s for s in suites if s.name == suite_name)
    return next(c for c in suite if c.name.startswith(purpose + ":"))


def test_certification_xml(run, results):
    path = run / "certification.xml"
    assert schema_errors(path) == []
    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = list(xml)
    names = [s.name for s in suites]
    assert "RFC 3515" in names and "role transferee" in names and "role transferor" in names
    # every test once under its RFC and once under its role
    assert sum(s.tests for s in suites) == 2 * len(results["tests"])
    blind = _case(suites, "RFC 3515", "TE-BLIND-001")
    (failure,) = blind.result
    assert isinstance(failure, junitparser.Failure) and failure.type == "MUST"
    assert failure.message.startswith("RFC 3515 §2.4.2 MUST not met: ")
    assert "expected 202" in failure.text
    assert "test_purpose=TE-BLIND-001" in blind.system_out and "level=MUST" in blind.system_out
    assert "ladder=test_scenario_TE-BLIND-001/ladder.svg" in blind.system_out
    should = _case(suites, "role transferee", "TE-ORIG-001")
    (failure,) = should.result
    assert isinstance(failure, junitparser.Failure) and failure.type == "SHOULD"
    assert "level=SHOULD" in should.system_out
    known = _case(suites, "RFC 3515", "TE-SUB-001")
    (skip,) = known.result
    assert isinstance(skip, junitparser.Skipped) and skip.message == f"known failure (xfail): {KNOWN}"
    na = _case(suites, "role transferor", "TR-REFER-001")
    (skip,) = na.result
    assert isinstance(skip, junitparser.Skipped) and skip.message.startswith("not applicable: ")
    assert _case(suites, "RFC 3515", "TE-REJECT-001").is_passed
    rfc3515 = next(s for s in suites if s.name == "RFC 3515")
    props = {p.name: p.value for p in rfc3515.properties()}
    level = results["by_rfc"]["RFC 3515"]["levels"]["MUST"]
    assert props["must_met"] == f"{level['met']}/{level['applicable']}"
    assert props["dut"] == "referee test phone (refer_200,no_notify)" and props["should_as_warning"] == "false"


PYTEST_XUNIT1_EXTENSIONS = (
    "Element 'testcase', attribute 'file': The attribute 'file' is not allowed.",
    "Element 'testcase', attribute 'line': The attribute 'line' is not allowed.",
    "Element 'properties': This element is not expected.",
)


def test_junit_xml_against_jenkins_schema(run, tmp_path):
    """pytest's junit.xml: readable by junitparser; against the Jenkins schema it deviates only by
    what junit_family=xunit1 adds per test case (file, line, and the <properties> referee records)."""
    path = run / "junit.xml"
    xml = junitparser.JUnitXml.fromfile(str(path))
    cases = [c for suite in xml for c in suite]
    assert len(cases) == len(SELECTED)
    errors = schema_errors(path)
    unexpected = [e for e in errors if not e.endswith(PYTEST_XUNIT1_EXTENSIONS)]
    assert unexpected == []
    tree = etree.parse(str(path))
    for case in tree.iter("testcase"):
        case.attrib.pop("file", None)
        case.attrib.pop("line", None)
        for props in case.findall("properties"):
            case.remove(props)
    stripped = tmp_path / "junit-without-xunit1-extensions.xml"
    tree.write(str(stripped))
    assert schema_errors(stripped) == []


def test_ladder_svg_per_test(run, results):
    tests = _by_purpose(results)
    with_trace = [t for t in results["tests"] if t["artifacts"]["trace"]]
    assert with_trace and all(t["artifacts"]["ladder"] for t in with_trace)
    blind = tests["TE-BLIND-001"]
    trace = json.loads((run / blind["artifacts"]["trace"]).read_text())
    root = etree.parse(str(run / blind["artifacts"]["ladder"])).getroot()
    lanes = [g for g in root.iter(f"{SVG}g") if "lane" in g.get("class", "").split()]
    dut = f"{trace['dut']['address'][0]}:{trace['dut']['address'][1]}"
    assert [g.findtext(f"{SVG}text") for g in lanes] == ["transferor", dut, "target"]
    assert "dut" in lanes[1].get("class") and "DUT (transferee)" in "".join(lanes[1].itertext())
    msgs = [g for g in root.iter(f"{SVG}g") if "msg" in g.get("class", "").split()]
    failing = [g for g in msgs if "fail" in g.get("class").split()]
    assert [(g.get("data-label"), "CSeq: 2 REFER" in g.findtext(f"{SVG}title")) for g in failing] == [("200 OK", True)]
    note = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "failnote")
    assert re.search(r"step \d+ failed: transferor expects 202", "".join(note.itertext()))


def test_index_html_content_and_links(run, results):
    doc = lxml_html.parse(str(run / "index.html")).getroot()
    assert doc.find(".//style") is not None and doc.find(".//script") is not None
    assert not doc.xpath("//link[@rel='stylesheet'] | //script[@src]")      # self-contained
    sections = doc.xpath("//details[contains(@class,'test')]")
    assert len(sections) == len(results["tests"])
    for href in doc.xpath("//a/@href"):
        if not href.startswith("#"):
            assert (run / href).exists(), href
    blind = doc.get_element_by_id("t-test_scenario_TE-BLIND-001")
    text = blind.text_content()
    assert "RFC 3515 §2.4.2 MUST" in text and "expected 202" in text and blind.get("open") is not None
    assert blind.xpath(".//svg//*[contains(@class,'failnote')]")
    known = doc.xpath("//details[@data-verdict='known_failure']")
    assert len(known) == 1 and KNOWN in known[0].text_content()


def _png_size(path: pathlib.Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def test_index_html_in_headless_chromium(run, results, chromium, tmp_path):
    url = (run / "index.html").as_uri()
    done = chromium(url, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = lxml_html.fromstring(done.stdout)
    assert dom.xpath("//body/@data-ready") == ["1"]                       # the page script ran
    banner = dom.get_element_by_id("verdict").text_content()
    must = results["levels"]["MUST"]
    assert f"MUST requirements met: {must['met']} of {must['applicable']}" in banner
    rows = dom.xpath("//table[@id='tests']/tbody/tr")
    assert len(rows) == len(results["tests"])
    assert sorted(r.get("data-verdict") for r in rows) == sorted(SELECTED.values())
    # the failing message of TE-BLIND-001 is preselected in its side panel
    blind = dom.get_element_by_id("t-test_scenario_TE-BLIND-001")
    panel = blind.xpath(".//pre[@class='panel-text']")[0].text_content()
    assert panel.startswith("SIP/2.0 200 OK") and "CSeq: 2 REFER" in panel
    assert blind.xpath(".//*[contains(@class,'msg') and contains(@class,'selected') and contains(@class,'fail')]")
    # a link to one message opens its test and shows that message in the panel
    page = lxml_html.parse(str(run / "index.html")).getroot()
    passed = page.get_element_by_id("t-test_scenario_TE-REJECT-001")
    target = passed.xpath(".//*[@data-label='REFER']")[0]
    done = chromium(f"{url}#{target.get('id')}", "--dump-dom")
    dom = lxml_html.fromstring(done.stdout)
    chosen = dom.get_element_by_id(target.get("id"))
    assert "selected" in chosen.get("class").split()
    section = dom.get_element_by_id("t-test_scenario_TE-REJECT-001")
    assert section.get("open") is not None
    assert section.xpath(".//pre[@class='panel-text']")[0].text_content().startswith("REFER sip:")
    # and it renders: a screenshot of the top of the page
    shot = tmp_path / "index.png"
    done = chromium(url, f"--screenshot={shot}", "--window-size=1400,2000", "--hide-scrollbars")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    assert _png_size(shot) == (1400, 2000)
    assert shot.stat().st_size > 40_000, "the screenshot looks blank"
