"""`referee merge` (referee/merge.py) on report directories written here: the merged reports,
the interop matrix of several DUTs, and what a missing or corrupt part does."""

from __future__ import annotations

import json
import pathlib
import xml.etree.ElementTree as ET

from referee.merge import merge
from referee.report import results

STARTED = 1_800_000_000.0
JUNIT_LABELS = {"passed": "PASS", "failed": "FAIL", "inconclusive": "INCONCLUSIVE", "error": "ERROR",
                "skipped": "N/A", "known_failure": "KNOWN FAILURE", "unexpected_pass": "UNEXPECTED PASS"}


def nodeid(purpose: str) -> str:
    return f"suites/test_scenarios.py::test_scenario[{purpose}]"


def write_part(directory: pathlib.Path, dut: str, verdicts: dict[str, str], shard: str | None = None) -> pathlib.Path:
    """A report directory as `referee run` leaves it: results.json, junit.xml, a trace.json per test."""
    directory.mkdir(parents=True)
    records = []
    for purpose, verdict in verdicts.items():
        test_dir = directory / f"test_scenario_{purpose}"
        test_dir.mkdir()
        trace = test_dir / "trace.json"
        trace.write_text(json.dumps({"steps": [{"index": "1", "description": "transferor sends REFER",
                                                "status": "passed"}], "messages": []}))
        records.append(results.TestRecord(
            nodeid(purpose), test_purpose=purpose, title=f"title of {purpose}", rfc="RFC 3515", section="2.4.2",
            level="MUST", role="transferee", dut=dut, verdict=verdict, duration=1.5,
            message="" if verdict == "passed" else f"{verdict}: why", trace=str(trace),
            properties={"test_purpose": purpose, "trace": str(trace)}, finished=True))
    run = results.RunInfo(dut=dut, started=STARTED, finished=STARTED + 10)
    document = results.results_document(records, run, directory, {})
    if shard:
        document["run"]["shard"] = shard
    results.write_results(directory / "results.json", document)
    suite = ET.SubElement(ET.Element("testsuites"), "testsuite", {"name": "pytest"})
    for r in records:
        case = ET.SubElement(suite, "testcase", {"classname": "suites.test_scenarios",
                                                 "name": r.nodeid.split("::")[-1]})
        props = ET.SubElement(case, "properties")
        ET.SubElement(props, "property", {"name": "trace", "value": r.trace})
        ET.SubElement(props, "property", {"name": "verdict", "value": JUNIT_LABELS[r.verdict]})
    ET.ElementTree(suite).write(directory / "junit.xml", encoding="utf-8", xml_declaration=True)
    return directory


def verdicts_of(out: pathlib.Path) -> dict[tuple[str, str], str]:
    document = json.loads((out / "results.json").read_text())
    return {(t["test_purpose"], t["dut"]): t["verdict"] for t in document["tests"]}


def test_shards_merge_into_one_report_with_every_test_and_its_artifacts(tmp_path, capsys):
    one = write_part(tmp_path / "s1", "phone", {"TE-A-001": "passed", "TE-B-001": "failed"}, shard="1/2")
    two = write_part(tmp_path / "s2", "phone", {"TE-C-001": "known_failure", "PX-D-001": "skipped"}, shard="2/2")
    out = tmp_path / "merged"
    status = merge([str(one), str(two)], out)
    printed = capsys.readouterr().out
    assert status == 1 and "exit status 1" in printed
    assert verdicts_of(out) == {("TE-A-001", "phone"): "passed", ("TE-B-001", "phone"): "failed",
                                ("TE-C-001", "phone"): "known_failure", ("PX-D-001", "phone"): "skipped"}
    document = json.loads((out / "results.json").read_text())
    assert [p["shard"] for p in document["run"]["parts"]] == ["1/2", "2/2"]
    assert document["run"]["exitstatus"] == 1
    assert (out / "test_scenario_TE-C-001" / "trace.json").exists()
    test = next(t for t in document["tests"] if t["test_purpose"] == "TE-C-001")
    assert test["artifacts"]["trace"] == "test_scenario_TE-C-001/trace.json"
    junit = ET.parse(out / "junit.xml").getroot()
    assert len(list(junit.iter("testcase"))) == 4
    traces = [p.get("value") for p in junit.iter("property") if p.get("name") == "trace"]
    assert traces and all(value.startswith(str(out)) for value in traces)
    certification = ET.parse(out / "certification.xml").getroot()
    assert certification.get("tests") == "8"           # every test once per RFC and once per role
    index = (out / "index.html").read_text()
    assert "TE-B-001" in index and "PX-D-001" in index
    assert json.loads((out / "durations.json").read_text())[nodeid("TE-A-001")] == 1.5
    assert not (out / "interop-matrix.md").exists()     # one DUT: no matrix


def test_parts_of_several_duts_give_the_interop_matrix(tmp_path, capsys):
    matrix_dir = tmp_path / "matrix"
    write_part(matrix_dir / "alpha", "Alpha phone", {"TE-A-001": "passed", "TE-B-001": "failed"})
    write_part(matrix_dir / "beta", "Beta phone", {"TE-A-001": "inconclusive", "TE-B-001": "passed"})
    out = tmp_path / "merged"
    status = merge([str(matrix_dir)], out)             # a directory of report directories
    assert status == 1
    assert verdicts_of(out) == {("TE-A-001", "Alpha phone"): "passed", ("TE-B-001", "Alpha phone"): "failed",
                                ("TE-A-001", "Beta phone"): "inconclusive", ("TE-B-001", "Beta phone"): "passed"}
    table = (out / "interop-matrix.md").read_text()
    assert "| test purpose | Alpha phone | Beta phone |" in table
    assert "| TE-A-001 | pass | inconc. |" in table and "| TE-B-001 | **FAIL** | pass |" in table
    assert "`alpha`" in table
    suites = ET.parse(out / "interop-matrix.xml").getroot().findall("testsuite")
    assert [s.get("name") for s in suites] == ["Alpha phone", "Beta phone"]
    # the same test of two DUTs: two tests, each with its own artifacts
    assert (out / "Alpha_phone" / "test_scenario_TE-A-001" / "trace.json").exists()
    assert (out / "Beta_phone" / "test_scenario_TE-A-001" / "trace.json").exists()
    names = [c.get("name") for c in ET.parse(out / "certification.xml").getroot().iter("testcase")]
    assert "TE-A-001 @ Alpha phone: title of TE-A-001" in names
    assert "TE-A-001 @ Beta phone: title of TE-A-001" in names


def test_missing_and_corrupt_parts_are_named_and_the_rest_is_merged(tmp_path, capsys):
    good = write_part(tmp_path / "s1", "phone", {"TE-A-001": "passed"}, shard="1/3")
    corrupt = write_part(tmp_path / "s2", "phone", {"TE-B-001": "passed"}, shard="2/3")
    (corrupt / "results.json").write_text('{"format": "referee-results", "run": ')
    out = tmp_path / "merged"
    status = merge([str(good), str(corrupt), str(tmp_path / "s3")], out)
    captured = capsys.readouterr()
    assert f"{corrupt / 'results.json'}: not valid JSON" in captured.err
    assert f"{tmp_path / 's3'}: no such report directory" in captured.err
    assert status == 2 and "exit status 2" in captured.out      # incomplete, as an interrupted run
    assert verdicts_of(out) == {("TE-A-001", "phone"): "passed"}
    assert json.loads((out / "results.json").read_text())["run"]["interrupted"] is True
    assert (out / "index.html").exists() and ET.parse(out / "certification.xml").getroot() is not None


def test_a_missing_junit_xml_and_a_corrupt_trace_are_named(tmp_path, capsys):
    part = write_part(tmp_path / "s1", "phone", {"TE-A-001": "passed", "TE-B-001": "passed"})
    (part / "junit.xml").unlink()
    (part / "test_scenario_TE-B-001" / "trace.json").write_text("{not json")
    status = merge([str(part)], tmp_path / "merged")
    err = capsys.readouterr().err
    assert f"{part / 'junit.xml'}: missing" in err
    assert f"{tmp_path / 'merged' / 'test_scenario_TE-B-001' / 'trace.json'}: not a readable trace.json" in err
    assert status == 2
    assert verdicts_of(tmp_path / "merged") == {("TE-A-001", "phone"): "passed", ("TE-B-001", "phone"): "passed"}


def test_exit_status_follows_the_rules_of_a_run(tmp_path, capsys):
    cases = {"all_na": ({"TE-A-001": "skipped"}, 5), "inconclusive": ({"TE-A-001": "inconclusive"}, 4),
             "error": ({"TE-A-001": "error", "TE-B-001": "inconclusive"}, 3),
             "known": ({"TE-A-001": "known_failure", "TE-B-001": "passed"}, 0)}
    for name, (verdicts, expected) in cases.items():
        part = write_part(tmp_path / name, "phone", verdicts)
        assert merge([str(part)], tmp_path / f"{name}-merged") == expected, name


def test_the_output_cannot_be_one_of_the_parts(tmp_path, capsys):
    part = write_part(tmp_path / "s1", "phone", {"TE-A-001": "passed"})
    assert merge([str(part)], part) == 2
    assert "cannot be one of the parts" in capsys.readouterr().err
    assert json.loads((part / "results.json").read_text())["tests"][0]["test_purpose"] == "TE-A-001"


def test_a_shard_without_a_part_is_named(tmp_path, capsys):
    one = write_part(tmp_path / "s1", "phone", {"TE-A-001": "passed"}, shard="1/3")
    three = write_part(tmp_path / "s3", "phone", {"TE-C-001": "passed"}, shard="3/3")
    assert merge([str(one), str(three)], tmp_path / "merged") == 2
    assert "phone: no part for shard 2/3" in capsys.readouterr().err
    assert set(verdicts_of(tmp_path / "merged")) == {("TE-A-001", "phone"), ("TE-C-001", "phone")}
