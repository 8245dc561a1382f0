"""<report-dir>/load-junit.xml: one JUnit test case per load step, written with junit-xml.

    <testsuites>
      <testsuite name="load blind 20 cps" tests="1" ...>
        <properties>                      the step's figures (see FIGURES)
          <property name="rate_asked_cps" value="20"/> ...
        </properties>
        <testcase name="blind 20 cps" classname="referee.load.blind" time="...">
          <system-out>the same figures, one name=value per line</system-out>
          <failure type="load" message="criteria not met: ...">every criterion not met, every
                   party's SIPp summary, every failed sample</failure>
        </testcase>
      </testsuite>
      ...
    </testsuites>

The JUnit schema (junit-10.xsd of the Jenkins xUnit plugin) has no <properties> inside
<testcase>, so each step is its own <testsuite> carrying the figures as <properties>, and its one
<testcase> repeats them in <system-out> (as certification.xml does). The file validates against
that schema.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import socket
import time
import xml.etree.ElementTree as ET

from junit_xml import TestCase, TestSuite

_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(text: object) -> str:
    return _XML_BAD.sub("\ufffd", str(text))


@dataclasses.dataclass
class StepRecord:
    kind: str
    rate: float
    elapsed: float
    figures: dict[str, object]       # ordered name -> value (None: not measured)
    failures: list[str]              # criteria not met (empty: passed)
    details: str = ""                # long text for the failure element
    error: str = ""                  # the step could not run at all
    timestamp: str = dataclasses.field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))

    @property
    def name(self) -> str:
        return f"{self.kind} {self.rate:g} cps"


def _value(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) < 1e9 else f"{value:g}"
    return str(value)


def suite_for(record: StepRecord, hostname: str) -> TestSuite:
    props = {name: _x(_value(value)) for name, value in record.figures.items()}
    lines = "\n".join(f"{name}={value}" for name, value in props.items())
    case = TestCase(_x(record.name), classname=f"referee.load.{record.kind}", elapsed_sec=round(record.elapsed, 3),
                    stdout=_x(lines))
    if record.error:
        case.add_error_info(message=_x(record.error.splitlines()[0][:300]), output=_x(record.error),
                            error_type="error")
    elif record.failures:
        message = "criteria not met: " + "; ".join(record.failures)
        case.add_failure_info(message=_x(message[:1000]), output=_x(message + "\n\n" + record.details),
                              failure_type="load")
    return TestSuite(_x(f"load {record.name}"), [case], hostname=hostname, timestamp=record.timestamp,
                     package="referee.load", properties=props)


def write(path: pathlib.Path, records: list[StepRecord]) -> pathlib.Path:
    """Write every step recorded so far (the whole file, atomically, each time a step ends)."""
    hostname = socket.gethostname()
    root = ET.Element("testsuites", {"name": "referee load"})
    totals = {"tests": 0, "failures": 0, "errors": 0}
    total_time = 0.0
    for record in records:
        element = suite_for(record, hostname).build_xml_doc()
        element.attrib.pop("disabled", None)     # junit-xml writes it; the schema has no such attribute
        for key in totals:
            totals[key] += int(element.get(key, "0"))
        total_time += record.elapsed
        root.append(element)
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
    os.replace(tmp, path)
    return path
