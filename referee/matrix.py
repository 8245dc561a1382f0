"""`referee matrix`: run the suites over several DUT profiles and tabulate the verdicts.

Each profile gets its own `referee run` (its own process and report directory); the matrix is
test purpose x DUT -> pass / FAIL / known / skip, written as Markdown (docs/) and as JUnit (one
testsuite per DUT, written with junit-xml).
"""

from __future__ import annotations

import dataclasses
import pathlib
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

from junit_xml import TestCase, TestSuite, to_xml_report_string

SYMBOLS = {"passed": "pass", "failed": "**FAIL**", "inconclusive": "inconc.", "error": "ERROR", "xfailed": "known",
           "xpassed": "pass (known)", "skipped": "n/a"}
# the `verdict` property referee writes into junit.xml -> the names used here
FROM_PROPERTY = {"PASS": "passed", "FAIL": "failed", "INCONCLUSIVE": "inconclusive", "ERROR": "error",
                 "N/A": "skipped", "KNOWN FAILURE": "xfailed", "UNEXPECTED PASS": "xpassed"}


@dataclasses.dataclass
class DutRun:
    profile: pathlib.Path
    name: str
    exit_code: int
    seconds: float
    verdicts: dict[str, str]       # test purpose -> passed | failed | inconclusive | error | xfailed | xpassed | skipped
    messages: dict[str, str]


def read_verdicts(junit: pathlib.Path) -> tuple[str, dict[str, str], dict[str, str]]:
    """(DUT name, test purpose -> passed | failed | inconclusive | error | xfailed | xpassed | skipped,
    test purpose -> full message) from a `referee run` JUnit file; test cases are named
    `test_x[PURPOSE]` and carry the `verdict` property."""
    verdicts: dict[str, str] = {}
    messages: dict[str, str] = {}
    dut_name = ""
    if not junit.exists():
        return dut_name, verdicts, messages
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = case.get("name", "")
        if "[" not in name:
            continue
        purpose = name[name.index("[") + 1:name.rindex("]")]
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        dut_name = props.get("dut", dut_name)
        verdict = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                verdict = "failed" if child.tag == "failure" else "error"
                messages[purpose] = (child.get("message") or "") + "\n" + (child.text or "")
            elif child.tag == "skipped":
                kind = (child.get("type") or "") + (child.get("message") or "")
                verdict = "xfailed" if "xfail" in kind else "skipped"
                messages[purpose] = (child.get("message") or "") + "\n" + (child.text or "")
        verdicts[purpose] = FROM_PROPERTY.get(props.get("verdict", ""), verdict)
    return dut_name, verdicts, messages


def first_line(text: str, width: int = 200) -> str:
    return (text.strip().splitlines() or [""])[0][:width]


def run_profile(profile: pathlib.Path, report_root: pathlib.Path, extra: list[str]) -> DutRun:
    report_dir = report_root / profile.stem
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "referee.cli", "run", "--dut", str(profile),
                           "--report-dir", str(report_dir), *extra], capture_output=True, text=True)
    seconds = time.monotonic() - start
    name, verdicts, messages = read_verdicts(report_dir / "junit.xml")
    if proc.returncode >= 2 and not verdicts:
        messages["(run)"] = (proc.stdout + proc.stderr).strip().splitlines()[-1:][0] if (proc.stdout + proc.stderr).strip() else ""
    return DutRun(profile, name or profile.stem, proc.returncode, seconds, verdicts, messages)


def markdown(runs: list[DutRun]) -> str:
    purposes = sorted({p for r in runs for p in r.verdicts})
    lines = ["# Interop matrix", "",
             "Produced by `referee matrix`: every test purpose against every DUT profile in duts/.",
             "pass = conformant; **FAIL** = the DUT violates the requirement, shown by a message it sent",
             "(or one it was obliged to send and did not; its report names the message and the pcap frame);",
             "inconc. = INCONCLUSIVE: the flow never reached the point of judging (e.g. the preamble failed,",
             "or the product cannot perform an action the test needs); ERROR = the suite or its environment",
             "failed, nothing is said about the DUT; known = a known deviation of that DUT (the test still",
             "fails; listed in its profile); n/a = the DUT does not declare the role or capability the test needs.",
             ""]
    lines.append("| test purpose | " + " | ".join(f"{r.name}" for r in runs) + " |")
    lines.append("|---|" + "---|" * len(runs))
    for purpose in purposes:
        cells = [SYMBOLS.get(r.verdicts.get(purpose, ""), "–") for r in runs]
        lines.append(f"| {purpose} | " + " | ".join(cells) + " |")
    lines += ["", "| DUT | profile | PASS | FAIL | INCONCLUSIVE | ERROR | known | n/a | run time |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        count = lambda *vs: sum(1 for x in r.verdicts.values() if x in vs)  # noqa: E731
        lines.append(f"| {r.name} | `{r.profile.name}` | {count('passed', 'xpassed')} | {count('failed')} | "
                     f"{count('inconclusive')} | {count('error')} | {count('xfailed')} | {count('skipped')} | "
                     f"{r.seconds:.0f} s |")
    for title, verdict in (("Failures (the DUT's evidence is in each test's report)", "failed"),
                           ("Inconclusive", "inconclusive"), ("Errors", "error")):
        items = [(r, p, m) for r in runs for p, m in sorted(r.messages.items()) if r.verdicts.get(p) == verdict]
        if items:
            lines += ["", f"## {title}", ""]
            lines += [f"- **{r.name}** {p}: {first_line(m)}" for r, p, m in items]
    return "\n".join(lines) + "\n"


def junit(runs: list[DutRun]) -> str:
    suites = []
    for r in runs:
        cases = []
        for purpose, verdict in sorted(r.verdicts.items()):
            case = TestCase(purpose, classname=f"matrix.{r.profile.stem}")
            message = first_line(r.messages.get(purpose, ""))
            if verdict == "failed":
                case.add_failure_info(message=message, output=r.messages.get(purpose, ""), failure_type="FAIL")
            elif verdict == "error":
                case.add_error_info(message=message, output=r.messages.get(purpose, ""), error_type="ERROR")
            elif verdict in ("skipped", "xfailed", "inconclusive"):
                prefix = {"xfailed": "known deviation: ", "inconclusive": "inconclusive: ",
                          "skipped": "not applicable: "}[verdict]
                case.add_skipped_info(message=prefix + message.removeprefix("not applicable: "))
            cases.append(case)
        suites.append(TestSuite(r.name, cases, properties={"profile": str(r.profile.name)}))
    return to_xml_report_string(suites)


def main(profiles: list[pathlib.Path], out_dir: pathlib.Path, report_root: pathlib.Path, extra: list[str]) -> int:
    runs = []
    for profile in profiles:
        print(f"matrix: {profile} ...", flush=True)
        run = run_profile(profile, report_root, extra)
        count = lambda v: sum(x == v for x in run.verdicts.values())  # noqa: E731
        print(f"  {run.name}: {count('passed')} PASS, {count('failed')} FAIL, {count('inconclusive')} INCONCLUSIVE, "
              f"{count('error')} ERROR in {run.seconds:.0f} s", flush=True)
        runs.append(run)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "interop-matrix.md").write_text(markdown(runs))
    (out_dir / "interop-matrix.xml").write_text(junit(runs))
    print(f"matrix: {out_dir / 'interop-matrix.md'}, {out_dir / 'interop-matrix.xml'}")
    return 0
