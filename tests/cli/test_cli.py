"""The `referee` command as a user runs it: exit codes, reports, validation messages."""

import pathlib
import subprocess
import sys
import xml.etree.ElementTree as ET

REPO = pathlib.Path(__file__).resolve().parents[2]
PHONE = REPO / "tests" / "faulty" / "phone.py"


def referee(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "referee.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def phone_profile(tmp_path, faults=""):
    launch = f'["{{python}}", "{PHONE}", "--port", "{{port}}"' + (f', "--faults", "{faults}"' if faults else "") + "]"
    path = tmp_path / "phone.toml"
    path.write_text(f'name = "test phone"\nkind = "phone"\nlaunch = {launch}\n'
                    'roles = ["transferee", "target"]\ncapabilities = ["replaces", "refer_sub"]\n')
    return path


def test_run_passes_and_writes_junit_with_properties(tmp_path):
    result = referee("run", "--dut", str(phone_profile(tmp_path)), "--report-dir", str(tmp_path / "r"),
                     "-k", "TE-BLIND-001")
    assert result.returncode == 0, result.stdout + result.stderr
    root = ET.parse(tmp_path / "r" / "junit.xml").getroot()
    case = next(root.iter("testcase"))
    assert "TE-BLIND-001" in case.get("name")
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["rfc"] == "RFC 3515" and props["level"] == "MUST" and props["role"] == "transferee"
    assert props["dut"] == "test phone" and props["scenario"] == "te-blind-001.yaml"
    assert pathlib.Path(props["trace"]).exists()


def test_run_exits_1_when_a_test_fails_and_names_the_step(tmp_path):
    result = referee("run", "--dut", str(phone_profile(tmp_path, "refer_200")), "--report-dir",
                     str(tmp_path / "r"), "-k", "TE-BLIND-001")
    assert result.returncode == 1
    assert "step 3 (transferor expects 202)" in result.stdout
    assert "SIP/2.0 200 OK (CSeq 2 REFER)" in result.stdout


def test_run_with_a_broken_profile_exits_2_or_more_with_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nkind = "phon"\naddress = "127.0.0.1:5080"\nroles = ["target"]\n')
    result = referee("run", "--dut", str(bad), "--report-dir", str(tmp_path / "r"))
    assert result.returncode >= 2
    assert "key 'kind': 'phon' is not one of phone, pbx, proxy" in result.stdout + result.stderr


def test_run_against_a_dut_that_is_down_stops_at_once_with_one_message(tmp_path):
    down = tmp_path / "down.toml"
    down.write_text('name = "nobody home"\nkind = "phone"\naddress = "127.0.0.1:9"\nroles = ["transferee"]\n')
    result = referee("run", "--dut", str(down), "--report-dir", str(tmp_path / "r"), "-k", "TE-", timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "'nobody home' does not answer at 127.0.0.1:9 (udp)" in output
    assert "FAILED" not in output and output.count("nobody home") == 1     # one message, not one per test


def test_validate_reports_file_and_line(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: TE-X-001\ntitle: t\nrfc: RFC 3515\nsection: '1'\nlevel: MUST\ndut: transferee\n"
                      "parties: {transferor: agent, transferee: dut}\nbody:\n  - expect: 202\n    at: transferor\n"
                      "    hedaers: {}\n")
    result = referee("validate", str(broken))
    assert result.returncode == 1
    assert "broken.yaml:11: step 1: unknown matcher 'hedaers' in expect step (did you mean 'headers'?)" in result.stdout
    assert referee("validate").returncode == 0


def test_list_shows_applicability(tmp_path):
    result = referee("list", "--dut", str(phone_profile(tmp_path)))
    assert result.returncode == 0
    line = next(l for l in result.stdout.splitlines() if l.startswith("TE-BLIND-001"))
    assert "RFC 3515" in line and "MUST" in line and "n/a" not in line


def test_profile_pointing_outside_test_ranges_is_refused_unless_allowed(tmp_path):
    prod = tmp_path / "prod.toml"
    prod.write_text('name = "typo"\nkind = "phone"\naddress = "192.0.2.44:5060"\nroles = ["transferee"]\n')
    result = referee("run", "--dut", str(prod), "--report-dir", str(tmp_path / "r"), "-k", "TE-BLIND-001")
    assert result.returncode >= 2
    assert "192.0.2.44 is not loopback or a test range" in result.stdout + result.stderr
    assert "--allow-target 192.0.2.44" in result.stdout + result.stderr


def test_after_the_dut_went_silent_following_tests_are_errors_not_failures(tmp_path):
    """A DUT that answers the start-up probe and then goes silent: the first test cannot set up
    its call (INCONCLUSIVE, it waited and says why); the following ones fail fast as ERRORs
    (the DUT is unreachable: an environment problem, not a requirement the DUT broke)."""
    port = _free_udp_port()
    dut = subprocess.Popen([sys.executable, str(REPO / "tests" / "cli" / "silent_dut.py"), str(port)],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert dut.stdout.readline().strip() == "READY"
        silent = tmp_path / "silent.toml"
        silent.write_text(f'name = "goes silent"\nkind = "phone"\naddress = "127.0.0.1:{port}"\n'
                          'roles = ["transferee"]\n')
        result = referee("run", "--dut", str(silent), "--report-dir", str(tmp_path / "r"), "-k", "TE-",
                         timeout=300)
    finally:
        dut.kill()
        dut.wait()
    assert result.returncode == 3, result.stdout[-3000:]
    assert result.stdout.count("DUT unreachable since") >= 2, result.stdout[-3000:]
    assert "no final response to INVITE" in result.stdout   # the first one waited and says why
    assert "FAILED" not in result.stdout
    root = ET.parse(tmp_path / "r" / "junit.xml").getroot()
    kinds = {child.tag for case in root.iter("testcase") for child in case if child.tag != "properties"}
    assert "failure" not in kinds and "error" in kinds


def _free_udp_port() -> int:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


