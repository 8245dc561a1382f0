"""certification.xml: the verdicts per requirement as JUnit XML, written with the junit-xml package.

One <testsuite> per RFC ("RFC 3515") and one per DUT role ("role transferee"); every test appears
once in each. Outcomes:

    MUST not met                  <failure type="MUST">
    SHOULD / MAY not met          <failure type="SHOULD">, or with should_as_warning
                                  <skipped message="warning: SHOULD not met: ...">
    known failure (strict xfail)  <skipped message="known failure (xfail): ...">
    inconclusive                  <skipped message="inconclusive: ..."> (not judged: the preamble
                                  failed, or the product cannot perform an action)
    error                         <error type="ERROR"> (the suite or its environment failed)
    not applicable                <skipped message="not applicable: ...">

The file validates against the Jenkins JUnit schema (junit-10.xsd of the Jenkins xUnit plugin).
That schema has no <properties> inside <testcase>, so each case's properties are written as
`name=value` lines in its <system-out>; each suite has <properties> with its pass rates.
"""

from __future__ import annotations

import os
import pathlib
import re
import socket
import xml.etree.ElementTree as ET

from junit_xml import TestCase, TestSuite

from .results import RunInfo, TestRecord, group, level_rates, relative

_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
CASE_PROPERTIES = ("test_purpose", "title", "rfc", "section", "level", "role", "verdict", "scenario",
                   "dut", "known_failure", "trace", "pcap", "ladder")


def _x(text: object) -> str:
    """Text XML 1.0 can carry."""
    return _XML_BAD.sub("\ufffd", str(text))


def _first_line(text: str) -> str:
    line = text.strip().split("\n", 1)[0]
    return line[:300]


def _reason(text: str) -> str:
    """The first line that says why (not the headline naming the verdict kind)."""
    line = _first_line(text)
    return line.split(": ", 1)[1] if line.startswith(("INCONCLUSIVE", "ERROR")) and ": " in line else line


def case_for(record: TestRecord, classname: str, should_as_warning: bool, base: pathlib.Path) -> TestCase:
    name = record.name + (f": {record.title}" if record.title else "")
    props = {"verdict": record.verdict, "ladder": relative(record.ladder, base),
             "trace": relative(record.trace, base), "pcap": relative(record.pcap, base)}
    lines = []
    for key in CASE_PROPERTIES:
        value = props[key] if key in props else getattr(record, key, "")
        if value:
            lines.append(f"{key}={value}")
    case = TestCase(_x(name), classname=_x(classname), elapsed_sec=round(record.duration, 3),
                    stdout=_x("\n".join(lines)))
    ref = record.reference or "test"
    if record.verdict == "failed":
        message = f"{ref} not met: {_first_line(record.message)}"
        if record.soft and should_as_warning:
            case.add_skipped_info(message=_x(f"warning: {message}"), output=_x(record.message))
        else:
            case.add_failure_info(message=_x(message), output=_x(record.message),
                                  failure_type=record.level or "failure")
    elif record.verdict == "error":
        case.add_error_info(message=_x(f"{ref}: not judged, error of the suite or its environment: "
                                       f"{_reason(record.message)}"),
                            output=_x(record.message), error_type="ERROR")
    elif record.verdict == "inconclusive":
        case.add_skipped_info(message=_x(f"inconclusive: {ref} not judged: {_reason(record.message)}"),
                              output=_x(record.message))
    elif record.verdict == "known_failure":
        reason = record.known_failure or _first_line(record.message)
        case.add_skipped_info(message=_x(f"known failure (xfail): {reason}"), output=_x(record.message))
    elif record.verdict == "skipped":
        case.add_skipped_info(message=_x(f"not applicable: {_first_line(record.message)}"))
    return case


def suite_for(name: str, package: str, records: list[TestRecord], run: RunInfo, base: pathlib.Path,
              hostname: str) -> TestSuite:
    properties = {"dut": run.dut, "should_as_warning": str(run.should_as_warning).lower()}
    for level, rate in level_rates(records).items():
        if rate["applicable"]:
            properties[f"{level.lower()}_met"] = f"{rate['met']}/{rate['applicable']}"
            properties[f"{level.lower()}_pass_rate"] = f"{100 * rate['rate']:.1f}%"
    classname = f"{package}.{re.sub(r'[^A-Za-z0-9_-]+', '', name.replace(' ', '')).lower() or 'x'}"
    cases = [case_for(r, classname, run.should_as_warning, base) for r in records]
    return TestSuite(_x(name), cases, hostname=hostname, package=package, timestamp=run.started_iso,
                     properties={k: _x(v) for k, v in properties.items()})


def certification_suites(records: list[TestRecord], run: RunInfo, base: pathlib.Path) -> list[TestSuite]:
    hostname = socket.gethostname()
    suites = [suite_for(rfc, "referee.rfc", rs, run, base, hostname) for rfc, rs in group(records, "rfc").items()]
    suites += [suite_for(f"role {role}", "referee.role", rs, run, base, hostname)
               for role, rs in group(records, "role").items()]
    return suites


def write_certification(path: pathlib.Path, records: list[TestRecord], run: RunInfo) -> None:
    """Write certification.xml (atomically: a reader never sees half a file)."""
    suites = certification_suites(records, run, path.parent)
    root = ET.Element("testsuites", {"name": "referee certification"})
    totals = {"tests": 0, "failures": 0, "errors": 0}
    total_time = 0.0
    for suite in suites:
        element = suite.build_xml_doc()
        # junit-xml always writes disabled="0"; the Jenkins schema has no such attribute and
        # referee never disables a case.
        element.attrib.pop("disabled", None)
        element.set("time", f"{sum(c.elapsed_sec or 0 for c in suite.test_cases):.3f}")
        for key in totals:
            totals[key] += int(element.get(key, "0"))
        total_time += float(element.get("time", "0"))
        root.append(element)
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    tmp = path.with_name(path.name + ".tmp")
    ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
    os.replace(tmp, path)
