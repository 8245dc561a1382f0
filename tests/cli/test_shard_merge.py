"""`referee run --shard K/N` and `referee merge`: the split (fixtures/sharding.py) and a real run
against the built-in reference phone, sharded and merged, judged as the same run unsharded."""

from __future__ import annotations

import json
import os
import pathlib
import random
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from fixtures.sharding import default_seconds, load_durations, parse_shard, split

REPO = pathlib.Path(__file__).resolve().parents[2]
# a dozen quick test purposes of the reference phone, with a known failure and an N/A among them
SELECTION = "(TE-NOTIFY-00 or TE-BLIND or TE-MULTI or PX-ROUTE) and not NAT"
IDS = [f"suites/test_scenarios.py::test_scenario[TE-{n:03d}]" for n in range(40)]


def referee(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "referee.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


# -- the split --------------------------------------------------------------------------------

@pytest.mark.parametrize("shards", [1, 2, 3, 7, 40, 45])
def test_every_test_is_in_exactly_one_shard(shards):
    durations = {test_id: (i * 7 % 11) + 0.5 for i, test_id in enumerate(IDS[:25])}   # the rest unrecorded
    parts = split(IDS, shards, durations)
    assert len(parts) == shards
    together = [test_id for part in parts for test_id in part]
    assert sorted(together) == sorted(IDS)
    if shards <= len(IDS):
        assert all(parts)                    # no shard left empty while there are tests enough


def test_the_split_is_the_same_whatever_the_order_of_collection():
    durations = {test_id: float(i % 5) for i, test_id in enumerate(IDS)}
    first = split(IDS, 3, durations)
    for seed in range(5):
        shuffled = list(IDS)
        random.Random(seed).shuffle(shuffled)
        assert split(shuffled, 3, durations) == first


def test_shards_are_balanced_by_duration():
    durations = {IDS[0]: 30.0} | {test_id: 1.0 for test_id in IDS[1:31]}
    parts = split(IDS[:31], 3, durations)
    loads = [sum(durations[t] for t in part) for part in parts]
    assert IDS[0] in parts[0] and parts[0] == [IDS[0]]     # the long test alone in one shard
    assert max(loads) - min(loads) <= max(durations.values())
    assert sorted(loads) == [15.0, 15.0, 30.0]


def test_tests_without_a_recorded_duration_weigh_the_mean():
    assert default_seconds({"a": 1.0, "b": 3.0}) == 2.0
    parts = split(["a", "b", "new"], 2, {"a": 1.0, "b": 3.0})
    assert parts == [["b"], ["new", "a"]]


def test_shard_argument_and_durations_file_errors_name_the_problem(tmp_path):
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "3", "a/b", "1/0"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)
    broken = tmp_path / "durations.json"
    broken.write_text("[1, 2]")
    with pytest.raises(ValueError, match=str(broken)):
        load_durations(broken)
    assert load_durations(tmp_path / "absent.json") == {}


def test_the_committed_durations_cover_the_reference_phone_run():
    durations = load_durations(REPO / "referee" / "data" / "durations.json")
    assert durations["suites/test_scenarios.py::test_scenario[TE-BLIND-001]"] > 0
    assert len(durations) > 50


def test_pytest_xdist_workers_run_their_shard_only(tmp_path):
    (tmp_path / "test_many.py").write_text("import pytest\n\n@pytest.mark.parametrize('n', range(9))\n"
                                           "def test_n(n):\n    pass\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("PYTEST_XDIST_WORKER", None)
    ran = []
    for k in (1, 2):
        junit = tmp_path / f"junit-{k}.xml"
        result = subprocess.run([sys.executable, "-m", "pytest", "-p", "fixtures.sharding", "-p", "no:cacheprovider",
                                 "-n", "2", f"--shard={k}/2", f"--junitxml={junit}", "test_many.py"],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        root = ET.parse(junit).getroot()
        assert {p.get("name"): p.get("value") for p in root.iter("property")} == {"shard": f"{k}/2"}
        ran.append(sorted(case.get("name") for case in root.iter("testcase")))
    assert len(ran[0]) in (4, 5) and len(ran[1]) in (4, 5)
    assert sorted(ran[0] + ran[1]) == sorted(f"test_n[{n}]" for n in range(9))


# -- a real run, sharded and merged -------------------------------------------------------------

def junit_verdicts(path: pathlib.Path) -> dict[str, str]:
    return {case.get("name"): next(p.get("value") for p in case.iter("property") if p.get("name") == "verdict")
            for case in ET.parse(path).getroot().iter("testcase")}


def results_verdicts(path: pathlib.Path) -> dict[str, str]:
    return {t["nodeid"]: t["verdict"] for t in json.loads(path.read_text())["tests"]}


def test_a_sharded_run_merged_has_the_verdicts_of_the_unsharded_run(tmp_path):
    whole = referee("run", "-k", SELECTION, "--report-dir", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stdout + whole.stderr
    expected = results_verdicts(tmp_path / "whole" / "results.json")
    assert len(expected) >= 10 and {"known_failure", "skipped"} <= set(expected.values())
    parts = []
    for k in (1, 2, 3):
        part = tmp_path / f"shard-{k}"
        result = referee("run", "-k", SELECTION, "--shard", f"{k}/3", "--report-dir", str(part))
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads((part / "results.json").read_text())["run"]["shard"] == f"{k}/3"
        parts.append(part)
    shard_tests = [set(results_verdicts(part / "results.json")) for part in parts]
    assert all(shard_tests)
    assert sorted(t for tests in shard_tests for t in tests) == sorted(expected)      # each in one shard

    merged = referee("merge", *map(str, parts), "-o", str(tmp_path / "merged"))
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert "exit status 0" in merged.stdout
    out = tmp_path / "merged"
    assert results_verdicts(out / "results.json") == expected
    assert junit_verdicts(out / "junit.xml") == junit_verdicts(tmp_path / "whole" / "junit.xml")
    assert ET.parse(out / "certification.xml").getroot().get("tests") == \
        ET.parse(tmp_path / "whole" / "certification.xml").getroot().get("tests")
    assert (out / "index.html").stat().st_size > 0
    assert (out / "test_scenario_TE-BLIND-001" / "trace.json").exists()
    assert set(json.loads((out / "durations.json").read_text())) == set(expected)
