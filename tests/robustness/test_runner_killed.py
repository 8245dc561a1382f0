"""A run killed with SIGKILL leaves no DUT process behind; Ctrl-C still writes the JUnit report."""

import os
import pathlib
import signal
import subprocess
import sys
import time
import uuid

REPO = pathlib.Path(__file__).resolve().parents[2]
PHONE = REPO / "tests" / "faulty" / "phone.py"


def profile(tmp_path, marker: str) -> pathlib.Path:
    # launched through a link named after the marker, so this run's DUT processes are findable
    link = tmp_path / f"{marker}.py"
    link.symlink_to(PHONE)
    path = tmp_path / "phone.toml"
    path.write_text(f'name = "test phone"\nkind = "phone"\n'
                    f'launch = ["{{python}}", "{link}", "--port", "{{port}}", "--answer", "noanswer"]\n'
                    'roles = ["transferee", "target"]\n')
    return path


def processes_with(marker: str) -> list[int]:
    out = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def start_run(tmp_path, marker, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "referee.cli", "run", "--dut", str(profile(tmp_path, marker)),
                             "--report-dir", str(tmp_path / "r"), "-k", "TE-BLIND-001"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def in_flow(tmp_path) -> bool:
    return (tmp_path / "r" / "test_scenario_TE-BLIND-001").is_dir()


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_sigkill_of_the_runner_takes_the_launched_dut_with_it(tmp_path):
    marker = f"referee-kill-{uuid.uuid4().hex[:8]}"
    runner = start_run(tmp_path, marker)
    try:
        # the DUT never answers: the run is mid-flow while we kill it (the test's artifact directory
        # exists once the test runs; before it, the run's start-up check launched the DUT once)
        assert wait_for(lambda: in_flow(tmp_path) and processes_with(marker), 20), "the DUT was never launched"
        time.sleep(0.5)
        runner.send_signal(signal.SIGKILL)
        runner.wait(10)
        assert wait_for(lambda: not processes_with(marker), 10), f"left behind: {processes_with(marker)}"
    finally:
        if runner.poll() is None:
            runner.kill()
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)


def test_ctrl_c_ends_the_run_cleanly_with_a_report(tmp_path):
    marker = f"referee-int-{uuid.uuid4().hex[:8]}"
    runner = start_run(tmp_path, marker)
    try:
        assert wait_for(lambda: in_flow(tmp_path) and processes_with(marker), 20)
        time.sleep(0.5)
        runner.send_signal(signal.SIGINT)
        out, _ = runner.communicate(timeout=30)
        assert runner.returncode >= 2, out
        assert "KeyboardInterrupt" in out or "Interrupted" in out
        assert (tmp_path / "r" / "junit.xml").exists()
        assert wait_for(lambda: not processes_with(marker), 10)
    finally:
        if runner.poll() is None:
            runner.kill()
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)
