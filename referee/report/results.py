"""Per-test results of a run, their verdicts, the summaries by role and by RFC, and results.json.

A `TestRecord` is built from pytest's reports (setup/call/teardown of one test, possibly
forwarded by pytest-xdist) and the test's properties (`record_property`: test_purpose, rfc,
section, level, role, trace, pcap, known_failure ...). Verdicts:

    passed            PASS: the requirement is met
    failed            FAIL: it is not, shown by a message of the DUT (the level says whether that
                      is a MUST, SHOULD or MAY)
    inconclusive      INCONCLUSIVE: the flow never reached the point of judging (preamble failed,
                      the product cannot perform an action)
    error             ERROR: the suite or the environment failed (crash, bind error, missing
                      program, exception inside referee); nothing is said about the DUT
    known_failure     a strict xfail: the DUT profile lists it as a known deviation, and it still fails
    unexpected_pass   an xfail that passed: the DUT meets a requirement its profile lists as a known
                      failure (pytest fails a strict one; the requirement is met all the same)
    skipped           not applicable to this DUT (or skipped for another reason)
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import re

VERDICTS = ("passed", "failed", "inconclusive", "error", "known_failure", "unexpected_pass", "skipped")
# the verdicts reports carry (fixtures/verdicts.py) -> the names used here
FROM_REPORT = {"pass": "passed", "fail": "failed", "inconclusive": "inconclusive", "error": "error",
               "na": "skipped", "known_failure": "known_failure", "unexpected_pass": "unexpected_pass"}
LEVELS = ("MUST", "SHOULD", "MAY")
PROPERTY_KEYS = ("test_purpose", "rfc", "section", "level", "role", "scenario", "dut", "trace", "pcap",
                 "known_failure", "title", "requirement")


@dataclasses.dataclass
class TestRecord:
    nodeid: str
    test_purpose: str = ""
    title: str = ""
    rfc: str = ""
    section: str = ""
    level: str = ""
    role: str = ""
    requirement: str = ""          # the requirement's text
    scenario: str = ""
    dut: str = ""
    verdict: str = "passed"
    duration: float = 0.0
    message: str = ""              # failure text, skip reason, xfail reason
    known_failure: str = ""
    trace: str | None = None       # absolute paths, when the files exist
    pcap: str | None = None
    ladder: str | None = None
    properties: dict[str, str] = dataclasses.field(default_factory=dict)
    worker: str = ""               # pytest-xdist worker that ran it ("gw0"), "" without xdist
    finished: bool = False         # the teardown report arrived
    judged: bool = False           # a conformance test (it got a referee verdict), even without metadata

    @property
    def name(self) -> str:
        return self.test_purpose or self.nodeid.split("::")[-1]

    @property
    def reference(self) -> str:
        """'RFC 3515 §2.4.2 MUST', or '' when the test carries no requirement."""
        if not self.rfc:
            return ""
        section = f" §{self.section}" if self.section else ""
        return f"{self.rfc}{section} {self.level}".strip()

    @property
    def soft(self) -> bool:
        """A SHOULD or MAY requirement: its failure is a warning when asked for."""
        return self.level in ("SHOULD", "MAY")

    def add_report(self, report) -> None:
        """Fold one pytest TestReport (setup, call or teardown) into this record."""
        self.duration += float(getattr(report, "duration", 0.0) or 0.0)
        self._take_properties(report)
        gateway = getattr(getattr(report, "node", None), "gateway", None)
        self.worker = self.worker or str(getattr(gateway, "id", "") or "")
        when = report.when
        wasxfail = getattr(report, "wasxfail", None)
        if when == "teardown":
            self.finished = True
        verdict = FROM_REPORT.get(getattr(report, "referee_verdict", None) or "")
        self.judged = self.judged or verdict is not None
        if when == "call" and verdict in ("inconclusive", "error"):
            self.verdict, self.message = verdict, _skip_reason(report) if report.skipped else _text(report)
            return
        if report.passed:
            if when == "call" and wasxfail is not None:
                self.verdict, self.message = "unexpected_pass", str(wasxfail)
            return
        if report.skipped:
            if wasxfail is not None:
                self.verdict = "known_failure"
                self.message = str(wasxfail)
                self.known_failure = self.known_failure or str(wasxfail)
                text = _text(report)
                if text:
                    self.message = f"{wasxfail}\n\n{text}"
            else:
                self.verdict, self.message = "skipped", _skip_reason(report)
            return
        # failed
        text = _text(report)
        if when == "call" and text.startswith("[XPASS(strict)]"):
            # listed as a known failure, yet the requirement is met: the profile is out of date
            self.verdict = "unexpected_pass"
            self.message = (f"{text}\n\nThe DUT now meets this requirement although its profile lists it "
                            "under known_failures: remove it from there.")
            return
        if when == "call":
            self.verdict, self.message = "failed", text
            return
        # setup or teardown error; pytest-xdist reports a crashed worker with when="???"
        what = f"error in test {when}" if when in ("setup", "teardown") else "crashed"
        if self.verdict in ("passed", "skipped", "unexpected_pass"):
            self.verdict, self.message = "error", f"{what}: {text}"
        else:
            self.message += f"\n\n{what}: {text}"

    def _take_properties(self, report) -> None:
        for key, value in getattr(report, "user_properties", []) or []:
            self.properties[str(key)] = str(value)
        meta = getattr(report, "referee", None)
        if isinstance(meta, dict):
            for key, value in meta.items():
                self.properties.setdefault(str(key), str(value))
        p = self.properties
        self.test_purpose = p.get("test_purpose", self.test_purpose)
        self.title = p.get("title", self.title)
        self.rfc = p.get("rfc", self.rfc)
        self.section = p.get("section", self.section)
        self.level = p.get("level", self.level).upper()
        self.role = p.get("role", self.role)
        self.requirement = p.get("requirement", self.requirement)
        self.scenario = p.get("scenario", self.scenario)
        self.dut = p.get("dut", self.dut)
        self.known_failure = p.get("known_failure", self.known_failure)
        self.trace = p.get("trace", self.trace)
        self.pcap = p.get("pcap", self.pcap)


_XDIST_HEADER = re.compile(r"^\[gw\d+\] [^\n]*\n")


def _text(report) -> str:
    """The failure text, without the '[gw0] linux -- Python ...' line pytest-xdist puts first."""
    text = getattr(report, "longreprtext", "") or ""
    return _XDIST_HEADER.sub("", text.strip()).strip()


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ").removeprefix("InconclusiveOutcome: ")
    return _text(report)


# --------------------------------------------------------------------------------------
# summaries
# --------------------------------------------------------------------------------------

def ordered(records: list[TestRecord]) -> list[TestRecord]:
    """Records in reading order: by role, then test purpose (natural order: TE-2 before TE-10)."""
    return sorted(records, key=lambda r: (r.role == "", _natural(r.role), _natural(r.name)))


def counts(records: list[TestRecord]) -> dict[str, int]:
    out = {v: 0 for v in VERDICTS}
    for r in records:
        out[r.verdict] = out.get(r.verdict, 0) + 1
    out["total"] = len(records)
    return out


def level_rates(records: list[TestRecord]) -> dict[str, dict]:
    """Per level: how many applicable tests met the requirement. Known failures count as not met;
    skipped tests are not applicable."""
    out: dict[str, dict] = {}
    for level in LEVELS:
        mine = [r for r in records if r.level == level and r.verdict != "skipped"]
        met = sum(1 for r in mine if r.verdict in ("passed", "unexpected_pass"))
        out[level] = {"met": met, "applicable": len(mine),
                      "rate": round(met / len(mine), 4) if mine else None}
    return out


def group(records: list[TestRecord], key: str) -> dict[str, list[TestRecord]]:
    """Records by 'rfc' or 'role' (records without one go under 'unclassified'), sorted by name."""
    out: dict[str, list[TestRecord]] = {}
    for r in records:
        out.setdefault(getattr(r, key) or "unclassified", []).append(r)
    return dict(sorted(out.items(), key=lambda kv: (kv[0] == "unclassified", _natural(kv[0]))))


def _natural(text: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text))


def summary(records: list[TestRecord], key: str) -> dict[str, dict]:
    return {name: {"counts": counts(rs), "levels": level_rates(rs)} for name, rs in group(records, key).items()}


# --------------------------------------------------------------------------------------
# results.json
# --------------------------------------------------------------------------------------

@dataclasses.dataclass
class RunInfo:
    dut: str = ""
    started: float = 0.0
    finished: float = 0.0
    exitstatus: int = 0
    interrupted: bool = False
    should_as_warning: bool = False
    middlebox: str | None = None      # headers rewritten between the suite and the DUT (the run's probe)

    @property
    def started_iso(self) -> str:
        return datetime.datetime.fromtimestamp(self.started).astimezone().isoformat(timespec="seconds")


def relative(path: str | None, base: pathlib.Path) -> str | None:
    """A path relative to the report directory (links that survive moving the directory)."""
    if not path:
        return None
    try:
        return os.path.relpath(path, base)
    except ValueError:
        return path


def load_trace(record: TestRecord) -> dict | None:
    if not record.trace or not os.path.isfile(record.trace):
        return None
    try:
        with open(record.trace, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def record_dict(record: TestRecord, base: pathlib.Path, trace: dict | None) -> dict:
    steps = [{k: s.get(k) for k in ("index", "line", "description", "status", "detail", "requirement", "phase")}
             for s in (trace or {}).get("steps", [])]
    return {
        "nodeid": record.nodeid, "test_purpose": record.test_purpose, "title": record.title,
        "requirement": {"rfc": record.rfc, "section": record.section, "level": record.level,
                        "text": record.requirement, "reference": record.reference},
        "role": record.role, "scenario": record.scenario, "dut": record.dut, "judged": record.judged,
        "verdict": record.verdict, "duration": round(record.duration, 3), "message": record.message,
        "phase": (trace or {}).get("phase") or None,
        "evidence": [{k: e.get(k) for k in ("party", "message", "source", "part", "expected", "seen", "frame")}
                     for e in (trace or {}).get("evidence", [])],
        "worker": record.worker or None,
        "known_failure": record.known_failure or None,
        "findings": list((trace or {}).get("findings", [])),
        "steps": steps, "messages": len((trace or {}).get("messages", [])),
        "artifacts": {"trace": relative(record.trace, base), "pcap": relative(record.pcap, base),
                      "ladder": relative(record.ladder, base)},
        "properties": dict(record.properties),
    }


def results_document(records: list[TestRecord], run: RunInfo, base: pathlib.Path,
                     traces: dict[str, dict | None]) -> dict:
    return {
        "format": "referee-results", "version": 1,
        "generated": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "run": {"dut": run.dut, "started": run.started_iso, "duration": round(run.finished - run.started, 3),
                "exitstatus": run.exitstatus, "interrupted": run.interrupted,
                "should_as_warning": run.should_as_warning, "middlebox": run.middlebox},
        "totals": counts(records), "levels": level_rates(records),
        "by_rfc": summary(records, "rfc"), "by_role": summary(records, "role"),
        "tests": [record_dict(r, base, traces.get(r.nodeid)) for r in records],
    }


def write_results(path: pathlib.Path, document: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)
