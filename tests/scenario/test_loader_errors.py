"""Broken scenario files get one clear error naming file:line and what was expected."""

import pathlib
import textwrap

import pytest

from referee.scenario import ScenarioError, load_all, load_scenario

GOOD = """\
id: TE-TEST-001
title: a test
rfc: RFC 3515
section: "2.4.2"
level: MUST
dut: transferee
parties:
  transferor: agent
  transferee: dut
  target: {kind: agent, auto_answer: 200}
preamble:
  - call: call1
    from: transferor
    to: transferee
body:
  - send: REFER
    from: transferor
    in: call1
    headers:
      Refer-To: "<{target.uri}>"
    save: refer
  - expect: 202
    at: transferor
    for: refer
"""


def write(tmp_path: pathlib.Path, text: str, name: str = "x.yaml") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path, text) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, text), tmp_path)
    return info.value


def test_good_file_loads(tmp_path):
    sc = load_scenario(write(tmp_path, GOOD), tmp_path)
    assert sc.id == "TE-TEST-001" and len(sc.steps) == 3
    assert sc.steps[2].line == 22 and [st.phase for st in sc.steps] == ["preamble", "body", "body"] and sc.all_markers() == ["rfc3515", "transferee", "must"]


def test_misspelled_matcher_key_names_line_step_and_suggestion(tmp_path):
    text = GOOD.replace("    for: refer\n", "    for: refer\n    hedaers: {Event: refer}\n")
    err = error_of(tmp_path, text)
    assert str(err) == "x.yaml:25: step 3: unknown matcher 'hedaers' in expect step (did you mean 'headers'?)"


def test_unknown_header_matcher_operator(tmp_path):
    text = GOOD + "  - expect: NOTIFY\n    at: transferor\n    headers:\n      Event: {regx: refer}\n"
    err = error_of(tmp_path, text)
    assert err.line == 28 and "unknown matcher 'regx' for header Event (did you mean 'regex'?)" in str(err)


def test_invalid_yaml_reports_line(tmp_path):
    err = error_of(tmp_path, GOOD.replace("  - send: REFER", "  - send: [REFER"))
    assert err.path.endswith("x.yaml") and err.line >= 15 and "invalid YAML" in err.message


@pytest.mark.parametrize("change, line, fragment", [
    (("level: MUST", "level: MUSTN'T"), 5, "level \"MUSTN'T\" must be one of MUST, SHOULD, MAY"),
    (("rfc: RFC 3515", "rfc: 3515"), 3, "rfc '3515' must look like 'RFC 3515'"),
    (("id: TE-TEST-001", "id: blind transfer"), 1, "is not a test purpose id like 'TE-BLIND-001'"),
    (("dut: transferee", "dut: transferree"), 6, "did you mean 'transferee'"),
    (("    at: transferor\n    for: refer", "    at: carol\n    for: refer"), 23, "unknown party 'carol'"),
    (("    in: call1\n", "    in: call2\n"), 18, "call 'call2' is not defined before this step (defined: call1)"),
    (("    for: refer", "    for: refer9"), 24, "'refer9' is not saved by an earlier step (saved: refer)"),
    (('Refer-To: "<{target.uri}>"', 'Refer-To: "<{target.url}>"'), 20, "unknown attribute {target.url}"),
    (('Refer-To: "<{target.uri}>"', 'Refer-To: "<{carol.uri}>"'), 20, "unknown variable {carol.uri}"),
    (("  - expect: 202", "  - expect: 2022"), 22, "expect needs a method (NOTIFY) or a status"),
    (("    at: transferor\n    for", "    at: transferee\n    for"), 23, "transferee is the DUT; only the suite's agents"),
    (("  - call: call1", "  - cal: call1"), 12, "unknown step kind 'cal' (did you mean 'call'?)"),
])
def test_specific_errors(tmp_path, change, line, fragment):
    err = error_of(tmp_path, GOOD.replace(*change, 1))
    assert err.line == line, str(err)
    assert fragment in str(err), str(err)


def test_wrong_types_and_missing_keys(tmp_path):
    assert "missing required key 'body'" in str(error_of(tmp_path, GOOD[:GOOD.index("body:")]))
    assert "a scenario file must be a mapping" in str(error_of(tmp_path, "- just\n- a list\n"))
    assert "body must be a non-empty list" in str(error_of(tmp_path, GOOD[:GOOD.index("body:")] + "body: []\n"))
    old = GOOD.replace("preamble:", "steps:").replace("body:\n", "")
    assert "'steps' is split into 'preamble'" in str(error_of(tmp_path, old))
    err = error_of(tmp_path, GOOD.replace("    for: refer", "    for: refer\n    timeout: soon"))
    assert "timeout must be a number of seconds" in str(err)
    err = error_of(tmp_path, GOOD.replace("title: a test", "title: a test\ntitel: typo"))
    assert "unknown top-level key 'titel' (did you mean 'title'?)" in str(err)


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "nope.yaml", tmp_path)
    assert str(info.value) == "nope.yaml: file not found"


def test_load_all_collects_every_broken_file_and_duplicates(tmp_path):
    d = tmp_path / "scenarios"
    d.mkdir()
    write(d, GOOD, "a.yaml")
    write(d, GOOD, "b.yaml")                                   # duplicate id
    write(d, GOOD.replace("level: MUST", "level: NEVER"), "c.yaml")
    (d / "sipp").mkdir()
    write(d / "sipp", "<xml/>", "ignored.yaml")
    scenarios, errors = load_all(d)
    assert [s.file.name for s in scenarios] == ["a.yaml", "b.yaml"]
    texts = sorted(str(e) for e in errors)
    assert any("c.yaml:5:" in t for t in texts)
    assert any("duplicate test purpose id 'TE-TEST-001'" in t for t in texts)


def test_repository_scenarios_are_all_valid():
    root = pathlib.Path(__file__).resolve().parents[2] / "scenarios"
    scenarios, errors = load_all(root)
    assert not errors, "\n".join(map(str, errors))
    assert scenarios
