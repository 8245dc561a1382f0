"""`referee merge DIR... -o OUT`: one report directory from the report directories of several runs.

The parts are the shards of one run (`referee run --shard K/N`) or runs against several DUTs
(`referee matrix`, sharded or not). Each part's results.json gives its tests (TestRecords), its
junit.xml the test cases of the merged junit.xml; every test's artifact directory (trace.json,
capture.pcap, ladder.svg) is copied under OUT (under OUT/<DUT>/ when the parts test several DUTs).
The reports are written by the writers a run uses: results.json, certification.xml, index.html,
plus durations.json (the measured durations, for `referee run --durations`) and, for several
DUTs, interop-matrix.md and interop-matrix.xml (as `referee matrix` writes them).

A DIR that is no report directory but holds report directories (reports/matrix/) stands for
them. A part that is missing or unreadable is named and left out, the rest is merged, and the
merged run counts as incomplete (exit status 2); otherwise the exit status is a run's, from the
merged verdicts (fixtures/verdicts.py).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import re
import shutil
import sys
import xml.etree.ElementTree as ET

from fixtures.sharding import parse_shard
from fixtures.verdicts import exit_status
from referee import matrix
from referee.report.certification import write_certification
from referee.report.html import render_index, write_index
from referee.report.ladder import ladder_for_test
from referee.report.results import (FROM_REPORT, VERDICTS, RunInfo, TestRecord, load_trace, ordered,
                                    results_document, write_results)

REPORTS = ("junit.xml", "certification.xml", "results.json", "index.html", "durations.json",
           "interop-matrix.md", "interop-matrix.xml")
TO_REPORT = {record: report for report, record in FROM_REPORT.items()}      # passed -> pass ...
TO_MATRIX = {"passed": "passed", "failed": "failed", "inconclusive": "inconclusive", "error": "error",
             "known_failure": "xfailed", "unexpected_pass": "xpassed", "skipped": "skipped"}
MEANING = {0: "every applicable test purpose passed", 1: "at least one FAIL",
           2: "incomplete: a part is missing or a run was interrupted", 3: "at least one ERROR",
           4: "at least one INCONCLUSIVE or unexpected pass", 5: "nothing was judged"}


@dataclasses.dataclass
class Part:
    directory: pathlib.Path
    run: dict                       # results.json "run"
    records: list[TestRecord]       # paths still those of the part
    suites: list[ET.Element]        # its junit.xml <testsuite>s

    @property
    def dut(self) -> str:
        return str(self.run.get("dut") or "")

    @property
    def shard(self) -> str | None:
        return self.run.get("shard")


class DutRecord(TestRecord):
    """A test of one of several DUTs: named with its DUT in the merged reports."""

    @property
    def name(self) -> str:
        return f"{super().name} @ {self.dut}"


class Problems:
    """What went wrong: errors lose verdicts (the merge is incomplete), warnings lose artifacts."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def error(self, text: str) -> None:
        self.errors.append(text)
        print(f"error: {text}", file=sys.stderr)

    def warning(self, text: str) -> None:
        self.warnings.append(text)
        print(f"warning: {text}", file=sys.stderr)


# -- reading the parts ----------------------------------------------------------------------

def is_report_dir(path: pathlib.Path) -> bool:
    return (path / "results.json").exists() or (path / "junit.xml").exists()


def part_directories(names: list[str], problems: Problems) -> list[pathlib.Path]:
    found = []
    for name in names:
        path = pathlib.Path(name).resolve()
        if not path.is_dir():
            problems.error(f"{name}: no such report directory")
        elif is_report_dir(path):
            found.append(path)
        else:
            inside = [sub for sub in sorted(path.iterdir()) if sub.is_dir() and is_report_dir(sub)]
            if not inside:
                problems.error(f"{name}: not a report directory (no results.json or junit.xml in it)")
            found += inside
    return found


def read_part(directory: pathlib.Path, problems: Problems) -> Part | None:
    document = read_results(directory / "results.json", problems)
    if document is None:
        return None
    records = []
    for index, test in enumerate(document["tests"]):
        try:
            records.append(record_from_json(test, directory))
        except (KeyError, TypeError, ValueError) as exc:
            problems.error(f"{directory / 'results.json'}: test {index + 1} unreadable ({type(exc).__name__}: {exc})")
    return Part(directory, document["run"], records, read_junit(directory / "junit.xml", problems))


def read_results(path: pathlib.Path, problems: Problems) -> dict | None:
    if not path.exists():
        problems.error(f"{path}: missing (every part needs its results.json)")
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        problems.error(f"{path}: not valid JSON ({exc})")
        return None
    if not (isinstance(document, dict) and document.get("format") == "referee-results"
            and isinstance(document.get("run"), dict) and isinstance(document.get("tests"), list)):
        problems.error(f"{path}: not a referee results.json (format, run and tests expected)")
        return None
    return document


def read_junit(path: pathlib.Path, problems: Problems) -> list[ET.Element]:
    if not path.exists():
        problems.error(f"{path}: missing (its tests are left out of the merged junit.xml)")
        return []
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        problems.error(f"{path}: not valid XML ({exc}); its tests are left out of the merged junit.xml")
        return []
    return [root] if root.tag == "testsuite" else list(root.iter("testsuite"))


def record_from_json(test: dict, base: pathlib.Path) -> TestRecord:
    """A results.json test as the TestRecord it was written from (artifact paths under `base`)."""
    requirement = test.get("requirement") or {}
    artifacts = test.get("artifacts") or {}
    verdict = test.get("verdict", "")
    if verdict not in VERDICTS:
        raise ValueError(f"unknown verdict {verdict!r}")
    located = {key: str(base / value) if value else None for key, value in artifacts.items()}
    return TestRecord(
        nodeid=str(test["nodeid"]), test_purpose=test.get("test_purpose") or "", title=test.get("title") or "",
        rfc=requirement.get("rfc") or "", section=requirement.get("section") or "",
        level=requirement.get("level") or "", requirement=requirement.get("text") or "",
        role=test.get("role") or "", scenario=test.get("scenario") or "", dut=test.get("dut") or "",
        verdict=verdict, duration=float(test.get("duration") or 0.0), message=test.get("message") or "",
        known_failure=test.get("known_failure") or "", trace=located.get("trace"), pcap=located.get("pcap"),
        ladder=located.get("ladder"), properties=dict(test.get("properties") or {}),
        worker=test.get("worker") or "", finished=True, judged=bool(test.get("judged")))


# -- the merged reports ---------------------------------------------------------------------

def safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:60] or "dut"


def copy_artifacts(record: TestRecord, part: Part, target: pathlib.Path, problems: Problems) -> dict[str, str]:
    """Copy the record's artifact directories from its part to `target` (replacing what an
    earlier merge left there); point the record there. Returns old path -> new path (for
    junit.xml's trace and pcap properties)."""
    copied: set[pathlib.Path] = set()
    moved: dict[str, str] = {}
    for key in ("trace", "pcap", "ladder"):
        path = getattr(record, key)
        if not path:
            continue
        relative = os.path.relpath(path, part.directory)
        if relative.startswith(".."):
            problems.warning(f"{part.directory / 'results.json'}: {record.nodeid}: {key} outside the part ({path})")
            continue
        source = pathlib.Path(path)
        destination = target / relative
        if not source.exists():
            problems.warning(f"{source}: missing ({record.nodeid})")
            setattr(record, key, None)
            continue
        if source.parent == part.directory:          # not in a test's own directory: the file alone
            shutil.copy2(source, destination)
        elif destination.parent not in copied:
            shutil.copytree(source.parent, destination.parent, dirs_exist_ok=True)
            copied.add(destination.parent)
        setattr(record, key, str(destination))
        original = record.properties.get(key)
        if original:
            moved[original] = str(destination)
            record.properties[key] = str(destination)
    return moved


def read_trace(record: TestRecord, problems: Problems) -> dict | None:
    trace = load_trace(record)
    if trace is None and record.trace and os.path.isfile(record.trace):
        problems.warning(f"{record.trace}: not a readable trace.json; the test's details are left out")
    if trace is not None and record.pcap:
        trace = dict(trace, pcap=record.pcap)      # the copied capture, for ladders from pcaps
    return trace


def ladder_of(record: TestRecord, trace: dict | None, problems: Problems):
    if trace is None:
        return None
    title = f"{record.name} — {record.title}" if record.title else record.name
    try:
        return ladder_for_test(trace, record.role or None, title=title)
    except Exception as exc:       # one broken trace must not cost the other reports
        problems.warning(f"{record.trace}: no ladder ({type(exc).__name__}: {exc})")
        return None


def timestamp(text: object) -> float | None:
    try:
        return datetime.datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


def merged_run(parts: list[Part], incomplete: bool) -> RunInfo:
    duts = list(dict.fromkeys(p.dut for p in parts if p.dut))
    starts = [(timestamp(p.run.get("started")), float(p.run.get("duration") or 0.0)) for p in parts]
    starts = [(start, seconds) for start, seconds in starts if start is not None]
    middleboxes = list(dict.fromkeys(str(p.run["middlebox"]) for p in parts if p.run.get("middlebox")))
    return RunInfo(dut=", ".join(duts),
                   started=min((s for s, _ in starts), default=0.0),
                   finished=max((s + d for s, d in starts), default=0.0),
                   interrupted=incomplete or any(bool(p.run.get("interrupted")) for p in parts),
                   should_as_warning=any(bool(p.run.get("should_as_warning")) for p in parts),
                   middlebox="; ".join(middleboxes) or None)


def merged_junit(parts: list[Part], moved: dict[str, str]) -> ET.Element:
    root = ET.Element("testsuites", {"name": "pytest tests"})
    for part in parts:
        for suite in part.suites:
            for prop in suite.iter("property"):
                if prop.get("name") in ("trace", "pcap") and prop.get("value") in moved:
                    prop.set("value", moved[prop.get("value")])
            root.append(suite)
    return root


def write_xml(path: pathlib.Path, root: ET.Element) -> None:
    tmp = path.with_name(path.name + ".tmp")
    ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
    os.replace(tmp, path)


def matrix_runs(parts: list[Part], records: list[TestRecord]) -> list[matrix.DutRun]:
    """One matrix.DutRun per DUT, from the merged records (purposes named as `referee matrix` does)."""
    runs = []
    for dut in dict.fromkeys(p.dut for p in parts):
        mine = [r for r in records if r.dut == dut]
        first = next(p for p in parts if p.dut == dut)
        seconds = sum(float(p.run.get("duration") or 0.0) for p in parts if p.dut == dut)
        verdicts = {matrix_purpose(r): TO_MATRIX[r.verdict] for r in mine if r.test_purpose}
        messages = {matrix_purpose(r): r.message for r in mine if (r.test_purpose or r.judged) and r.message}
        status = exit_status([TO_REPORT[r.verdict] for r in mine if r.test_purpose or r.judged], False)
        # the profile column: the run's profile when results.json names it, else the part's
        # directory (`referee matrix` names it after the profile)
        profile = pathlib.Path(str(first.run.get("profile") or first.directory.name))
        runs.append(matrix.DutRun(profile, dut or first.directory.name, status, seconds, verdicts, messages))
    return runs


def matrix_purpose(record: TestRecord) -> str:
    """'TE-BLIND-001', 'NAT-TE-RPORT-001-alg-on': the test's parameter id."""
    nodeid = record.nodeid
    if "[" in nodeid and "]" in nodeid:
        return nodeid[nodeid.index("[") + 1:nodeid.rindex("]")]
    return record.test_purpose


def check_shards(parts: list[Part], problems: Problems) -> None:
    """Every shard K/N of a DUT's sharded run is among the parts (a job may have left nothing)."""
    for dut in dict.fromkeys(p.dut for p in parts):
        shards = set()
        for part in parts:
            if part.dut == dut and part.shard:
                try:
                    shards.add(parse_shard(part.shard))
                except ValueError as exc:
                    problems.error(f"{part.directory / 'results.json'}: run.shard: {exc}")
        totals = {n for _, n in shards}
        if len(totals) > 1:
            problems.error(f"{dut or 'unknown DUT'}: parts of different splits "
                           f"({', '.join(f'{k}/{n}' for k, n in sorted(shards))})")
        elif totals:
            n = totals.pop()
            missing = [f"{k}/{n}" for k in range(1, n + 1) if (k, n) not in shards]
            if missing:
                problems.error(f"{dut or 'unknown DUT'}: no part for shard {', '.join(missing)}")


def collect(parts: list[Part], out: pathlib.Path, problems: Problems) -> tuple[list[TestRecord], dict[str, str]]:
    """Every part's records with their artifacts copied under `out` (one per DUT and test)."""
    several = len({p.dut for p in parts}) > 1
    chosen: dict[tuple[str, str], tuple[TestRecord, Part]] = {}
    for part in parts:
        for record in part.records:
            key = (part.dut, record.nodeid)
            if key in chosen:
                problems.warning(f"{record.nodeid} ({part.dut}) is in {chosen[key][1].directory} and in "
                                 f"{part.directory}; the latter is kept")
            chosen[key] = (record, part)
    records, moved = [], {}
    for (dut, nodeid), (record, part) in chosen.items():
        if several:
            record = DutRecord(**{f.name: getattr(record, f.name) for f in dataclasses.fields(TestRecord)})
            record.dut = dut                      # the DUT of the run it came from
            record.nodeid = f"{nodeid}@{safe(dut)}"
        moved.update(copy_artifacts(record, part, out / safe(dut) if several else out, problems))
        records.append(record)
    return ordered(records), moved


def merge(names: list[str], out: pathlib.Path) -> int:
    problems = Problems()
    out = out.resolve()
    directories = part_directories(names, problems)
    if out in directories:
        problems.error(f"{out}: the output directory cannot be one of the parts")
        print(f"exit status 2: {MEANING[2]}")
        return 2
    parts = [part for part in (read_part(d, problems) for d in directories) if part is not None]
    for part in parts:
        shard = f", shard {part.shard}" if part.shard else ""
        print(f"part {part.directory}: {part.dut or 'unknown DUT'}{shard}, {len(part.records)} tests")
    if not parts:
        print(f"nothing to merge; exit status 2: {MEANING[2]}")
        return 2
    check_shards(parts, problems)
    out.mkdir(parents=True, exist_ok=True)
    for name in REPORTS:
        (out / name).unlink(missing_ok=True)        # never leave an older merge's verdicts behind
    records, moved = collect(parts, out, problems)
    incomplete = bool(problems.errors)
    status = exit_status([TO_REPORT[r.verdict] for r in records if r.test_purpose or r.judged], incomplete)
    run = merged_run(parts, incomplete)
    run.exitstatus = status
    traces = {r.nodeid: read_trace(r, problems) for r in records}
    ladders = {r.nodeid: ladder_of(r, traces[r.nodeid], problems) for r in records}
    write_xml(out / "junit.xml", merged_junit(parts, moved))
    document = results_document(records, run, out, traces)
    document["run"]["parts"] = [{"directory": str(p.directory), "dut": p.dut, "shard": p.shard,
                                 "exitstatus": p.run.get("exitstatus")} for p in parts]
    write_results(out / "results.json", document)
    write_certification(out / "certification.xml", records, run)
    write_durations(out / "durations.json", parts)
    written = ["junit.xml", "certification.xml", "results.json", "durations.json"]
    if len({p.dut for p in parts}) > 1:
        runs = matrix_runs(parts, records)
        (out / "interop-matrix.md").write_text(matrix.markdown(runs), encoding="utf-8")
        (out / "interop-matrix.xml").write_text(matrix.junit(runs), encoding="utf-8")
        written += ["interop-matrix.md", "interop-matrix.xml"]
    write_index(out / "index.html", render_index(records, run, out, traces, ladders))
    counts = {v: sum(r.verdict == v for r in records) for v in VERDICTS}
    print(f"merged {len(records)} tests from {len(parts)} parts: {counts['passed'] + counts['unexpected_pass']} PASS, "
          f"{counts['failed']} FAIL, {counts['inconclusive']} INCONCLUSIVE, {counts['error']} ERROR, "
          f"{counts['known_failure']} known, {counts['skipped']} n/a")
    print(f"reports: {out / 'index.html'} ({', '.join(written)})")
    if problems.errors or problems.warnings:
        print(f"{len(problems.errors)} errors, {len(problems.warnings)} warnings (above)")
    print(f"exit status {status}: {MEANING[status]}")
    return status


def write_durations(path: pathlib.Path, parts: list[Part]) -> None:
    """The parts' measured durations (test id -> seconds; the longest when several DUTs ran it)."""
    durations: dict[str, float] = {}
    for part in parts:
        for r in part.records:
            if r.test_purpose:
                durations[r.nodeid] = max(durations.get(r.nodeid, 0.0), round(r.duration, 3))
    path.write_text(json.dumps(dict(sorted(durations.items())), indent=1) + "\n", encoding="utf-8")
