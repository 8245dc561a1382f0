"""`referee run` against a device the suite cannot drive itself, end to end: the reference phone
runs by itself with its call-control HTTP API, and the upper-tester drivers make it act.

  * driver = "http" and driver = "command" (tests/upper/refphone-http.toml, -command.toml)
  * driver = "operator" (tests/upper/refphone-operator.toml): `referee run` under pexpect, this
    test plays the person — it reads each instruction and performs it through the phone's API,
    or types `s` to skip

Each must give the transferor purposes (TR-*) the verdicts the launched reference phone gets
(duts/refphone.toml: all pass); a skipped action, or an action that brings no SIP, gives
INCONCLUSIVE, never a hang.

The phone listens on TCP, as the example profiles say: calls left up at the end of a test are
hung up by the phone once the suite's agents are gone; over UDP that BYE goes unanswered and
holds one of the phone's four call slots for 32 s (pjsip's Timer F), over TCP the refused
connection ends it at once.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys
import time

import pexpect
import pytest
from pexpect.popen_spawn import PopenSpawn

from referee.dut import load_profile
from referee.dut.applicability import skip_reason
from referee.dut.httpcall import send
from referee.dut.refphone import RefPhoneDriver
from referee.scenario import load_all

pytestmark = pytest.mark.timeout(300)

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "tests" / "upper"
PASSWORD = "device-api-secret-31337"
EXAMPLE_PASSWORDS = ("example-http-secret", "example-command-secret")
PROMPT = re.compile(r"On '[^']*': (.*?) — waiting up to ([0-9.]+) s for (.*?) \(s \+ Enter: skip\)")


def transferor_purposes() -> set[str]:
    """The TR-* purposes that apply to the launched reference phone (they all pass there)."""
    scenarios, _ = load_all(REPO / "scenarios")
    refphone = load_profile(REPO / "duts" / "refphone.toml")
    return {sc.id for sc in scenarios if sc.id.startswith("TR-") and skip_reason(sc, refphone) is None}


@pytest.fixture
def device():
    phone = RefPhoneDriver(user="dut", transport="tcp", control_port=0, control_auth=("digest", "admin", PASSWORD))
    try:
        phone.start()
        yield phone
    finally:
        phone.stop()


def point(example: str, device: RefPhoneDriver, tmp_path: pathlib.Path, **replace: str) -> pathlib.Path:
    """The example profile, pointed at this phone (its SIP port, API port and password)."""
    text = (EXAMPLES / example).read_text()
    text = text.replace("127.0.0.1:5060", f"127.0.0.1:{device.port}").replace("8080", str(device.control_port))
    for secret in EXAMPLE_PASSWORDS:
        text = text.replace(secret, PASSWORD)
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / example
    path.write_text(text)
    return path


def referee_args(profile: pathlib.Path, report: pathlib.Path, keyword: str, *extra: str) -> list[str]:
    return ["-m", "referee.cli", "run", "--dut", str(profile), "-k", keyword, "--report-dir", str(report), *extra]


def run(profile: pathlib.Path, report: pathlib.Path, keyword: str = "TR-") -> subprocess.CompletedProcess:
    # one test at a time: one device, and the phone has four call slots
    return subprocess.run([sys.executable, *referee_args(profile, report, keyword, "-n", "0")], cwd=REPO,
                          capture_output=True, text=True, timeout=240)


def verdicts(report: pathlib.Path) -> dict[str, tuple[str, str]]:
    """purpose -> (verdict, message) from results.json."""
    data = json.loads((report / "results.json").read_text())
    out = {}
    for test in data["tests"]:
        out[test["test_purpose"]] = (test["verdict"], test.get("message") or "")
    return out


def no_secret_in(report: pathlib.Path) -> None:
    for path in report.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("example", ["refphone-http.toml", "refphone-command.toml"])
def test_http_and_command_drivers_pass_the_transferor_purposes(tmp_path, device, example):
    report = tmp_path / "report"
    done = run(point(example, device, tmp_path), report)
    got = verdicts(report)
    assert {p: v for p, (v, _) in got.items()} == {p: "passed" for p in transferor_purposes()}, done.stdout[-3000:]
    assert done.returncode == 0
    no_secret_in(report)
    trace = json.loads((report / "test_scenario_TR-REFER-001" / "trace.json").read_text())
    assert "transfer: " in trace["dut"]["output"] and "seen: transferee received REFER" in trace["dut"]["output"]


def test_http_action_without_sip_evidence_is_inconclusive(tmp_path, device):
    """The API accepts the request (200) but the phone does nothing: no INVITE, INCONCLUSIVE."""
    profile = point("refphone-http.toml", device, tmp_path, **{
        "/api/dial?uri={target}": "/api/calls", 'handle = "call=(\\\\S+)"': 'handle = ""',
        "timeout = 15": "timeout = 2"})
    report = tmp_path / "report"
    started = time.monotonic()
    done = run(profile, report, "TR-REFER-001")
    verdict, message = verdicts(report)["TR-REFER-001"]
    assert verdict == "inconclusive" and done.returncode == 4, done.stdout[-3000:]
    assert "no evidence: the DUT was asked to dial (driver http) but no INVITE reached the suite's agents " \
           "within 2 s" in message
    assert time.monotonic() - started < 60


def test_http_refused_action_is_an_error_naming_action_status_and_answer(tmp_path, device):
    profile = point("refphone-http.toml", device, tmp_path, **{"body = \"uri={target}&call={call}\"":
                                                               "body = \"uri={target}&call=99\""})
    report = tmp_path / "report"
    done = run(profile, report, "TR-REFER-001")
    verdict, message = verdicts(report)["TR-REFER-001"]
    assert verdict == "error" and done.returncode == 3, done.stdout[-3000:]
    assert (f"http: transfer: POST http://127.0.0.1:{device.control_port}/api/transfer was answered 409 "
            f"Conflict: ERR no call '99'") in message
    no_secret_in(report)


# -- the operator -------------------------------------------------------------------------------------

class Operator:
    """Plays the person at the bench: performs each instruction through the phone's HTTP API."""

    def __init__(self, device: RefPhoneDriver) -> None:
        self.base = f"http://127.0.0.1:{device.control_port}/api"
        self.handles: dict[str, str] = {}       # the URI dialed -> the phone's call handle
        self.done: list[str] = []

    def api(self, action: str, params: str = "") -> str:
        answer = send("GET", f"{self.base}/{action}{'?' + params if params else ''}", auth="digest",
                      username="admin", password=PASSWORD)
        assert answer.ok, (action, answer)
        return answer.text

    def perform(self, instruction: str) -> None:
        import urllib.parse
        q = urllib.parse.quote
        if m := re.fullmatch(r"call (\S+)", instruction):
            self.handles[m[1]] = self.api("dial", f"uri={q(m[1])}").strip().split("=")[1]
        elif m := re.fullmatch(r"transfer the call with (\S+) to (\S+) \(blind transfer\)", instruction):
            self.api("transfer", f"uri={q(m[2])}&call={self.handles[m[1]]}")
        elif m := re.fullmatch(r"transfer the call with (\S+) to (\S+) \(attended transfer.*\)", instruction):
            self.api("attended-transfer", f"call={self.handles[m[1]]}&consult={self.handles[m[2]]}")
        else:
            raise AssertionError(f"an instruction this operator does not understand: {instruction!r}")
        self.done.append(instruction)

    def tidy(self) -> None:
        """'Test over: hang up every call still on ...'"""
        for line in self.api("calls").splitlines():
            self.api("hangup", f"call={line.split()[0]}")


def spawn(args: list[str]) -> pexpect.spawn:
    """`referee run` on a pseudo-terminal, as a person starts it."""
    return pexpect.spawn(sys.executable, args, cwd=str(REPO), encoding="utf-8", timeout=60,
                         dimensions=(50, 400), env={**os.environ, "COLUMNS": "400"})


def test_operator_driver_passes_the_transferor_purposes(tmp_path, device):
    report = tmp_path / "report"
    child = spawn(referee_args(point("refphone-operator.toml", device, tmp_path), report, "TR-"))
    person = Operator(device)
    try:
        while True:
            seen = child.expect([PROMPT, r"Test over: hang up every call still on", pexpect.EOF])
            if seen == 0:
                person.perform(child.match[1])
            elif seen == 1:
                person.tidy()
            else:
                break
    finally:
        child.close(force=True)
    got = verdicts(report)
    assert {p: v for p, (v, _) in got.items()} == {p: "passed" for p in transferor_purposes()}, child.before
    assert child.exitstatus == 0
    assert any(i.endswith("(blind transfer)") for i in person.done)
    assert any("(attended transfer" in i for i in person.done)


def test_operator_skip_is_inconclusive(tmp_path, device):
    report = tmp_path / "report"
    child = spawn(referee_args(point("refphone-operator.toml", device, tmp_path), report, "TR-REFER-001"))
    try:
        child.expect(PROMPT)
        assert child.match[1].startswith("call sip:transferee@127.0.0.1:") and child.match[2] == "20"
        assert child.match[3] == "its INVITE"
        child.sendline("s")
        child.expect(r"-> the operator skipped the action \(dial\): the test is INCONCLUSIVE")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    verdict, message = verdicts(report)["TR-REFER-001"]
    assert verdict == "inconclusive" and child.exitstatus == 4
    assert "the operator skipped the action (dial): nothing the DUT does here can be judged" in message


def test_operator_who_does_nothing_gives_inconclusive_not_a_hang(tmp_path, device):
    report = tmp_path / "report"
    profile = point("refphone-operator.toml", device, tmp_path, **{"timeout = 20": "timeout = 2"})
    started = time.monotonic()
    child = spawn(referee_args(profile, report, "TR-REFER-001"))
    try:
        child.expect(PROMPT)
        child.expect(r"-> no evidence: the test is INCONCLUSIVE")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    verdict, message = verdicts(report)["TR-REFER-001"]
    assert verdict == "inconclusive" and child.exitstatus == 4
    assert "no INVITE reached the suite's agents within 2 s" in message
    assert time.monotonic() - started < 60


def test_operator_without_a_terminal_is_prompted_through_the_output_capture(tmp_path, device):
    """No controlling terminal (a new session, stdin and stdout pipes): the instruction reaches
    stdout through pytest's capture, and `s` on stdin skips."""
    report = tmp_path / "report"
    child = PopenSpawn([sys.executable, *referee_args(point("refphone-operator.toml", device, tmp_path), report,
                                                      "TR-REFER-001")],
                       cwd=str(REPO), encoding="utf-8", timeout=60, preexec_fn=os.setsid)
    try:
        child.expect(PROMPT)
        child.sendline("s")
        child.expect(pexpect.EOF)
    finally:
        child.kill(9) if child.proc.poll() is None else None
    child.wait()
    verdict, message = verdicts(report)["TR-REFER-001"]
    assert verdict == "inconclusive" and "the operator skipped the action (dial)" in message


def test_operator_refuses_parallel_runs(tmp_path, device):
    done = subprocess.run([sys.executable, *referee_args(point("refphone-operator.toml", device, tmp_path),
                                                         tmp_path / "report", "TR-", "-n", "2")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert ('driver = "operator": one person performs the DUT\'s actions, one test at a time; run without -n '
            '(pytest-xdist)') in done.stdout + done.stderr
