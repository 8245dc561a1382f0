"""Run `referee run` against a DUT profile in a subprocess and read the verdicts from its JUnit.

Used by the self-validation tests: a faulty DUT must fail exactly the test purposes it violates.
"""

from __future__ import annotations

import dataclasses
import pathlib
import subprocess
import sys

from referee.matrix import read_verdicts

REPO = pathlib.Path(__file__).resolve().parents[2]
PHONE = REPO / "tests" / "faulty" / "phone.py"


@dataclasses.dataclass
class SuiteResult:
    exit_code: int
    verdicts: dict[str, str]     # test purpose id -> passed | failed | skipped | xfailed
    messages: dict[str, str]     # test purpose id -> failure message
    output: str

    def ids(self, verdict: str) -> set[str]:
        return {k for k, v in self.verdicts.items() if v == verdict}


def faulty_phone_profile(directory: pathlib.Path, faults: list[str], answer: str = "auto",
                         roles=("transferee", "target"),
                         capabilities=("transferee", "target", "replaces", "refer_sub")) -> pathlib.Path:
    name = "-".join(faults) or "none"
    path = directory / f"phone-{name}.toml"
    launch = ["{python}", str(PHONE), "--port", "{port}", "--answer", answer]
    if faults:
        launch += ["--faults", ",".join(faults)]
    path.write_text("\n".join([
        f'name = "test phone ({name})"', 'kind = "phone"',
        "launch = [" + ", ".join(f'"{a}"' for a in launch) + "]",
        "roles = [" + ", ".join(f'"{r}"' for r in roles) + "]",
        "capabilities = [" + ", ".join(f'"{c}"' for c in capabilities) + "]", ""]))
    return path


def run_suite(profile: pathlib.Path, report_dir: pathlib.Path, markers: str | None = None,
              keyword: str | None = None, timeout: float = 600, workers: int = 0) -> SuiteResult:
    argv = [sys.executable, "-m", "referee.cli", "run", "--dut", str(profile), "--report-dir", str(report_dir)]
    if markers:
        argv += ["-m", markers]
    if keyword:
        argv += ["-k", keyword]
    if workers:
        argv += ["-n", str(workers)]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    verdicts, messages = read_junit(report_dir / "junit.xml")
    return SuiteResult(proc.returncode, verdicts, messages, proc.stdout + proc.stderr)


def read_junit(path: pathlib.Path) -> tuple[dict[str, str], dict[str, str]]:
    """Per-test-purpose verdicts and failure messages (the reader `referee matrix` uses)."""
    _, verdicts, messages = read_verdicts(path)
    return verdicts, messages
