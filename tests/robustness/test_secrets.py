"""Passwords from a DUT profile never appear in what a run leaves behind.

One `referee run -m "pbx or security"` against the test PBX of tests/faulty/pbx.py, with a
profile holding distinctive passwords (fresh random ones each time). The users REGISTER and
answer the PBX's digest challenges with them (on the wire only the digest response, a hash,
travels), the PBX logs them at start-up (--verbose-auth, as a careless PBX might: its output goes
into every trace.json), and two faults make some tests fail so that failure messages, ladders of
failed tests and the summary are written too. Then every file under the report directory
(junit.xml, certification.xml, results.json, index.html, each test's trace.json, ladder.svg,
capture.pcap) and the run's stdout and stderr are searched for each password.

A second run has the same PBX print the passwords and then never become ready: its start-up
output goes into the "did not start" failure, which must not carry them either.
"""

from __future__ import annotations

import pathlib
import secrets
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
PBX = REPO / "tests" / "faulty" / "pbx.py"
FAULTS = "drop_replaces,hangup_failed_transfer"     # PB-ATT, PB-DECLINE, PB-BUSY, PB-UNKNOWN fail
PORTS = (25301, 25302, 25303)

pytestmark = pytest.mark.timeout(300)


def write_profile(directory: pathlib.Path, passwords: dict[str, str], ready: str = "READY") -> pathlib.Path:
    path = directory / "pbx-secrets.toml"
    lines = ['name = "referee test PBX (password leak check)"', 'kind = "pbx"',
             f'launch = ["{{python}}", "{PBX}", "--profile", "{{profile_dir}}/pbx-secrets.toml", "--host", '
             f'"{{host}}", "--port", "{{port}}", "--faults", "{FAULTS}", "--verbose-auth"]',
             f'ready = "{ready}"', "ready_timeout = 3", "register = true", ""]
    for (name, password), (ext, port) in zip(passwords.items(), ((f"100{i}", p) for i, p in enumerate(PORTS, 1))):
        lines += [f"[users.{name}]", f'extension = "{ext}"', f"port = {port}", f'password = "{password}"', ""]
    path.write_text("\n".join(lines))
    return path


def fresh_passwords() -> dict[str, str]:
    return {name: f"Pw{name.title()}{secrets.token_hex(8)}" for name in ("alice", "bob", "carol")}


def run(profile: pathlib.Path, reports: pathlib.Path, *selection: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "referee.cli", "run", "--dut", str(profile), "--report-dir",
                           str(reports), *selection], cwd=REPO, capture_output=True, text=True, timeout=240)


def leaks(passwords: dict[str, str], reports: pathlib.Path, output: str) -> list[str]:
    found = []
    for path in (p for p in reports.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{path.relative_to(reports)}: password of {name}" for name, pw in passwords.items()
                  if pw.encode() in data]
    return found + [f"referee run output: password of {name}" for name, pw in passwords.items() if pw in output]


def test_passwords_never_reach_reports_or_output(tmp_path):
    passwords = fresh_passwords()
    profile = write_profile(tmp_path, passwords)
    reports = tmp_path / "reports"
    proc = run(profile, reports, "-m", "pbx or security")
    output = proc.stdout + proc.stderr

    # the run did what the check relies on
    assert proc.returncode == 1, f"expected a run with failures (exit 1), got {proc.returncode}:\n{output[-3000:]}"
    cases = list(ET.parse(reports / "junit.xml").getroot().iter("testcase"))
    outcomes = {c.get("name"): "failed" if c.find("failure") is not None else
                "skipped" if c.find("skipped") is not None else "passed" for c in cases}
    assert "passed" in outcomes.values() and "failed" in outcomes.values(), outcomes
    files = [p for p in reports.rglob("*") if p.is_file()]
    kinds = {p.name for p in files}
    for wanted in ("junit.xml", "certification.xml", "results.json", "index.html", "trace.json", "ladder.svg",
                   "capture.pcap"):
        assert wanted in kinds, f"the run wrote no {wanted}: cannot check it ({sorted(kinds)})"
    traces = [p.read_text() for p in files if p.name == "trace.json"]
    assert any("auth: user 1001 password ********" in t for t in traces), \
        "the PBX's start-up log (which names the passwords) is in no trace.json, redacted or not"
    pcaps = b"".join(p.read_bytes() for p in files if p.suffix == ".pcap")
    assert b"Authorization: Digest" in pcaps, "no digest authentication on the wire: the passwords were never used"

    found = leaks(passwords, reports, output)
    assert not found, "passwords leaked:\n  " + "\n  ".join(found)


def test_passwords_not_in_the_failure_of_a_dut_that_does_not_start(tmp_path):
    passwords = fresh_passwords()
    profile = write_profile(tmp_path, passwords, ready="NEVER-READY")
    reports = tmp_path / "reports"
    proc = run(profile, reports, "-m", "pbx", "-k", "PB-BLIND-001")
    output = proc.stdout + proc.stderr
    # a DUT that does not start stops the run before any test: one error, exit status 2
    assert proc.returncode == 2 and "cannot be used" in output and "not ready within" in output, output[-3000:]
    assert "auth: user 1001 password" in output, "the PBX's start-up output is not in the failure: nothing to check"
    found = leaks(passwords, reports, output)
    assert not found, "passwords leaked:\n  " + "\n  ".join(found)
