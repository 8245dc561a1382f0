"""The upper-tester drivers against real programs: the http and command drivers make the
reference phone act through its call-control API (a second reference phone is the far end),
the operator driver talks to a real pseudo-terminal, and the phone's API itself is checked.
"""

from __future__ import annotations

import os
import pathlib
import sys
import textwrap
import time

import pytest

from referee.dut import load_profile
from referee.dut.driver import ActionUnsupported, DriverError, ProgramMissing
from referee.dut.command_driver import CommandDriver
from referee.dut.http_driver import HttpDriver
from referee.dut.httpcall import send
from referee.dut.operator import OperatorDriver
from referee.dut.refphone import RefPhoneDriver
from referee.dut.terminal import OperatorTerminal
from referee.scenario.verdict import INCONCLUSIVE, classify

pytestmark = pytest.mark.timeout(90)

PASSWORD = "ctl-secret-4711"


@pytest.fixture
def phones():
    """The device (a reference phone with its HTTP API, digest auth) and a far end."""
    device = RefPhoneDriver(user="dut", control_port=0, control_auth=("digest", "admin", PASSWORD))
    far = RefPhoneDriver(user="far")
    try:
        device.start()
        far.start()
        yield device, far
    finally:
        device.stop()
        far.stop()


def profile(tmp_path: pathlib.Path, device: RefPhoneDriver, driver: str, body: str):
    path = tmp_path / f"{driver}.toml"
    path.write_text(textwrap.dedent(f"""\
        name = "device under test"
        kind = "phone"
        address = "127.0.0.1:{device.port}"
        driver = "{driver}"
        roles = ["transferor"]
        """) + textwrap.dedent(body).replace("CTL", str(device.control_port)))
    return load_profile(path)


def make(cls, p, **kwargs):
    host, port = p.address
    driver = cls(host=host, port=port, user="dut", profile=p, **kwargs)
    driver.start()
    return driver


HTTP = """\
[http]
auth = "digest"
username = "admin"
password = "ctl-secret-4711"
[actions.dial]
url = "http://127.0.0.1:CTL/api/dial?uri={target}"
handle = "call=(\\\\S+)"
[actions.transfer]
method = "POST"
url = "http://127.0.0.1:CTL/api/transfer"
body = "uri={target}&call={call}"
[actions.hangup]
url = "http://127.0.0.1:CTL/api/hangup?call={call}"
"""


def test_http_driver_dials_and_transfers(tmp_path, phones):
    device, far = phones
    driver = make(HttpDriver, profile(tmp_path, device, "http", HTTP))
    handle = driver.dial(far.sip_uri)
    assert device.wait_event("confirmed", call=handle, timeout=5)      # the phone's own handle
    far.wait_event("confirmed", timeout=5)
    target = "sip:carol@127.0.0.1:9;transport=udp"
    driver.transfer(target)                                             # the call dialed last
    assert far.wait_event("transfer_request", timeout=5).get("target") == target
    log = driver.output_tail()
    assert "dial: GET http://127.0.0.1:" in log and "-> 200 OK call=" in log and PASSWORD not in log
    driver.stop()                                                       # hangs up what it dialed
    device.wait_event("disconnected", call=handle, timeout=5)


def test_http_error_names_action_status_and_answer(tmp_path, phones):
    device, _ = phones
    driver = make(HttpDriver, profile(tmp_path, device, "http", HTTP))
    with pytest.raises(DriverError) as info:
        driver.transfer("sip:carol@127.0.0.1:9", call="77")
    text = str(info.value)
    assert text.startswith(f"http: transfer: POST http://127.0.0.1:{device.control_port}/api/transfer was "
                           f"answered 409 Conflict: ERR no call '77'"), text
    assert classify(info.value, "preamble") == "error"


def test_http_wrong_password_is_a_driver_error_without_the_password(tmp_path, phones):
    device, far = phones
    p = profile(tmp_path, device, "http", HTTP.replace(PASSWORD, "wrong-pw-0815"))
    with pytest.raises(DriverError) as info:
        make(HttpDriver, p).dial(far.sip_uri)
    assert "was answered 401 Unauthorized: ERR authorization required" in str(info.value)
    assert "wrong-pw-0815" not in str(info.value)


def test_http_credentials_in_the_url_are_redacted(tmp_path, phones):
    device, far = phones
    p = profile(tmp_path, device, "http", HTTP.replace("/api/dial?uri={target}", "/api/nosuch?token=tok-0815"))
    with pytest.raises(DriverError) as info:
        make(HttpDriver, p).dial(far.sip_uri)
    assert "was answered 404 Not Found" in str(info.value) and "tok-0815" not in str(info.value)
    assert "token=********" in str(info.value)


def test_an_action_the_profile_does_not_map_is_inconclusive(tmp_path, phones):
    device, _ = phones
    driver = make(HttpDriver, profile(tmp_path, device, "http", HTTP))
    with pytest.raises(ActionUnsupported) as info:
        driver.hold()
    assert "does not say how to ask 'device under test' to hold (no [actions.hold])" in str(info.value)
    assert classify(info.value, "body") == INCONCLUSIVE


def test_http_requests_only_go_to_the_device_or_loopback(tmp_path, phones):
    device, far = phones
    p = profile(tmp_path, device, "http", HTTP.replace("http://127.0.0.1:CTL/api/dial", "http://192.0.2.7/api/dial"))
    with pytest.raises(DriverError) as info:
        make(HttpDriver, p).dial(far.sip_uri)
    assert "refusing to send a request to 192.0.2.7: not the DUT's address (127.0.0.1)" in str(info.value)


def test_a_driver_without_its_profile_says_so():
    with pytest.raises(DriverError) as info:
        HttpDriver(host="127.0.0.1", port=5060)
    assert "needs its profile" in str(info.value)


COMMAND = """\
[command]
timeout = 10
username = "admin"
password = "ctl-secret-4711"
[actions.dial]
run = ["{python}", "-m", "referee.dut.refphone.ctl", "--port", "CTL", "--auth", "digest", "--user", "{username}",
       "--password", "{password}", "dial", "{target}"]
handle = "call=(\\\\S+)"
[actions.hold]
run = ["{python}", "-m", "referee.dut.refphone.ctl", "--port", "CTL", "--auth", "digest", "--user", "{username}",
       "--password", "{password}", "hold", "{call}"]
"""


def test_command_driver_dials_and_reports_a_failing_command(tmp_path, phones):
    device, far = phones
    driver = make(CommandDriver, profile(tmp_path, device, "command", COMMAND))
    handle = driver.dial(far.sip_uri)
    device.wait_event("confirmed", call=handle, timeout=5)
    with pytest.raises(DriverError) as info:
        driver.hold(call="99")
    text = str(info.value)
    assert text.startswith("command: hold: ") and "exited with status 1; output: error: hold: 409 Conflict: " \
        "ERR no call '99'" in text, text
    assert PASSWORD not in text and "--password ********" in text


def test_command_timeout_and_missing_program(tmp_path, phones):
    device, far = phones
    slow = profile(tmp_path, device, "command", """\
        [command]
        timeout = 1
        [actions.dial]
        run = ["{python}", "-c", "import time; time.sleep(30)"]
        """)
    started = time.monotonic()
    with pytest.raises(DriverError) as info:
        make(CommandDriver, slow).dial(far.sip_uri)
    assert time.monotonic() - started < 5
    assert "command: dial: " in str(info.value) and "did not finish within 1 s (killed)" in str(info.value)
    missing = profile(tmp_path, device, "command", """\
        [actions.dial]
        run = ["no-such-phonectl", "dial", "{target}"]
        """)
    with pytest.raises(ProgramMissing) as info:
        make(CommandDriver, missing)
    assert "key 'actions.dial.run': program 'no-such-phonectl' not found" in str(info.value)


# -- the operator, on a real pseudo-terminal ---------------------------------------------------------

@pytest.fixture
def pty_terminal():
    master, slave = os.openpty()
    path = os.ttyname(slave)
    try:
        yield OperatorTerminal(tty=path), master
    finally:
        os.close(master)
        os.close(slave)


def read_screen(master: int, until: str, timeout: float = 5.0) -> str:
    import select
    seen = b""
    deadline = time.monotonic() + timeout
    while until.encode() not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            seen += os.read(master, 4096)
    return seen.decode("utf-8", "replace")


def operator(tmp_path, terminal) -> OperatorDriver:
    path = tmp_path / "op.toml"
    path.write_text('name = "Lab phone"\nkind = "phone"\naddress = "127.0.0.1:5060"\ndriver = "operator"\n'
                    'roles = ["transferor"]\n[actions]\ntimeout = 2\n[actions.transfer]\ntimeout = 45\n')
    driver = OperatorDriver(host="127.0.0.1", port=5060, profile=load_profile(path), terminal=terminal)
    driver.start()
    return driver


def test_operator_instruction_and_skip(tmp_path, pty_terminal):
    terminal, master = pty_terminal
    driver = operator(tmp_path, terminal)
    driver.purpose = "TR-REFER-001"
    handle = driver.dial("sip:transferee@127.0.0.1:40000")
    assert "call sip:transferee@127.0.0.1:40000 — waiting up to 2 s for its INVITE" in read_screen(master, "skip)")
    driver.action_over("dial", "seen: INVITE")          # as the runner does once it saw the INVITE
    driver.transfer("sip:target@127.0.0.1:40002")
    screen = read_screen(master, "for its REFER (s + Enter: skip)")
    assert ("[TR-REFER-001] On 'Lab phone': transfer the call with sip:transferee@127.0.0.1:40000 to "
            "sip:target@127.0.0.1:40002 (blind transfer) — waiting up to 45 s for its REFER (s + Enter: skip)") \
        in screen.replace("\r\n", "\n"), screen
    assert handle == "1" and not driver.skip_requested()
    os.write(master, b"hello\n")
    assert not driver.skip_requested()
    assert "still waiting" in read_screen(master, "skips this action")
    os.write(master, b"s\n")
    deadline = time.monotonic() + 2
    while not driver.skip_requested() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert driver.skip_requested()
    driver.action_over("transfer", "skipped: the test is INCONCLUSIVE")
    assert "-> skipped" in read_screen(master, "INCONCLUSIVE")


def test_operator_settings_are_confirmed_with_enter(tmp_path, pty_terminal):
    terminal, master = pty_terminal
    driver = operator(tmp_path, terminal)
    os.write(master, b"early typing is dropped\n")
    import threading
    worker = threading.Thread(target=driver.set_answer_mode, args=("manual",))
    worker.start()
    assert "turn auto answer off" in read_screen(master, "press Enter")
    os.write(master, b"\n")
    worker.join(5)
    assert not worker.is_alive() and "-> done" in read_screen(master, "done")
    started = time.monotonic()
    with pytest.raises(ActionUnsupported) as info:
        driver.set_refer_policy("decline")          # nobody answers: 2 s
    assert 1.5 < time.monotonic() - started < 5
    assert "was not confirmed within 2 s" in str(info.value) and classify(info.value, "preamble") == INCONCLUSIVE


def test_operator_without_any_terminal_is_refused_at_start(tmp_path):
    terminal = OperatorTerminal(tty="/nonexistent/tty")
    if os.isatty(1):
        pytest.skip("stdout is a terminal here")
    with pytest.raises(DriverError) as info:
        operator(tmp_path, terminal)
    assert "operator: no terminal" in str(info.value)


# -- the reference phone's call-control API ---------------------------------------------------------

def test_control_api_answers(phones):
    device, far = phones
    base = f"http://127.0.0.1:{device.control_port}/api"
    auth = dict(auth="digest", username="admin", password=PASSWORD)
    assert send("GET", f"{base}/calls").status == 401
    assert send("GET", f"{base}/calls", auth="basic", username="admin", password=PASSWORD).status == 401
    missing = send("GET", f"{base}/dial", **auth)
    assert (missing.status, missing.text) == (400, "ERR dial: parameter 'uri' is missing\n")
    assert send("GET", f"{base}/frobnicate", **auth).status == 404
    dialed = send("POST", f"{base}/dial", body=f'{{"uri": "{far.sip_uri}"}}', headers=[("Content-Type",
                                                                                       "application/json")], **auth)
    assert dialed.status == 200 and dialed.text.startswith("call=")
    handle = dialed.text.strip().split("=")[1]
    device.wait_event("confirmed", call=handle, timeout=5)
    listing = send("GET", f"{base}/calls", **auth)
    assert listing.text == f"{handle} confirmed {far.sip_uri}\n"
    assert send("GET", f"{base}/hangup?call={handle}", **auth).status == 200
    device.wait_event("disconnected", call=handle, timeout=5)


def test_control_api_basic_auth(tmp_path):
    device = RefPhoneDriver(user="dut", control_port=0, control_auth=("basic", "admin", PASSWORD))
    try:
        device.start()
        base = f"http://127.0.0.1:{device.control_port}/api"
        assert send("GET", f"{base}/calls").status == 401
        ok = send("GET", f"{base}/calls", auth="basic", username="admin", password=PASSWORD)
        assert (ok.status, ok.text) == (200, "")
    finally:
        device.stop()


def test_ctl_usage_errors():
    import subprocess
    run = subprocess.run([sys.executable, "-m", "referee.dut.refphone.ctl", "--port", "9", "attended-transfer", "1"],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "usage: attended-transfer CALL CONSULT" in run.stderr
    run = subprocess.run([sys.executable, "-m", "referee.dut.refphone.ctl", "--port", "9", "--timeout", "1", "calls"],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "error: no answer from the phone at 127.0.0.1:9" in run.stderr

