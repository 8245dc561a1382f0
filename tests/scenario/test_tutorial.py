"""The tutorial of scenarios/README.md, as a user follows it: its YAML file written to a directory
of their own, validated against the shipped schema, run against a PBX, its verdict and ladder read.
It passes against referee's B2BUA test PBX and fails against one that drops Referred-By — so the
tutorial cannot rot, and the test purpose it teaches can fail."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import jsonschema
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
README = REPO / "scenarios" / "README.md"
GOOD_PBX = REPO / "tests" / "faulty" / "b2bua-good.toml"


def tutorial_yaml() -> str:
    text = README.read_text()
    block = text.split("<!-- tutorial: begin -->", 1)[1].split("<!-- tutorial: end -->", 1)[0]
    return re.search(r"```yaml\n(.*?)```", block, re.S).group(1)


def referee(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "referee.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def write_tutorial(directory: pathlib.Path) -> pathlib.Path:
    path = directory / "my-pbx-001.yaml"
    path.write_text(tutorial_yaml())
    schema = referee("schema")
    (directory / "scenario.schema.json").write_text(schema.stdout)     # as the tutorial says
    return path


def pbx_without_referred_by(directory: pathlib.Path) -> pathlib.Path:
    text = GOOD_PBX.read_text().replace("{profile_dir}/b2bua-good.toml", str(GOOD_PBX))
    text = text.replace('"--port", "{port}"', '"--port", "{port}", "--faults", "no_referred_by"')
    path = directory / "pbx-no-referred-by.toml"
    path.write_text(text)
    return path


def verdicts(report_dir: pathlib.Path) -> dict[str, str]:
    out = {}
    for case in ET.parse(report_dir / "junit.xml").getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        out[props.get("test_purpose", case.get("name"))] = props.get("verdict")
    return out


def test_the_tutorial_file_is_at_most_30_lines_and_valid(tmp_path):
    assert len(tutorial_yaml().splitlines()) <= 30
    path = write_tutorial(tmp_path)
    result = referee("validate", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    schema = json.loads((tmp_path / "scenario.schema.json").read_text())
    assert not list(jsonschema.Draft202012Validator(schema).iter_errors(yaml.safe_load(path.read_text())))


def test_the_tutorial_test_purpose_passes_against_a_conformant_pbx(tmp_path):
    path = write_tutorial(tmp_path)
    report = tmp_path / "reports"
    result = referee("run", "--dut", str(GOOD_PBX), "--scenarios", str(path), "--report-dir", str(report))
    assert result.returncode == 0, result.stdout[-3000:]
    assert verdicts(report) == {"MY-PBX-001": "PASS"}
    ladder = report / "test_scenario_MY-PBX-001" / "ladder.svg"
    assert ladder.is_file() and "REFER" in ladder.read_text()
    assert (report / "index.html").is_file()


def test_the_tutorial_test_purpose_fails_a_pbx_that_drops_referred_by(tmp_path):
    path = write_tutorial(tmp_path)
    report = tmp_path / "reports"
    result = referee("run", "--dut", str(pbx_without_referred_by(tmp_path)), "--scenarios", str(path),
                     "--report-dir", str(report))
    assert result.returncode == 1, result.stdout[-3000:]
    assert verdicts(report) == {"MY-PBX-001": "FAIL"}
    assert "Referred-By absent" in result.stdout and "of the test's capture" in result.stdout
