"""Shared by the report tests: running referee/pytest in a subprocess, the Jenkins JUnit schema,
headless Chromium."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
XSD = pathlib.Path(__file__).with_name("jenkins-junit-10.xsd")
RUN_TIMEOUT = 240          # seconds: a whole `referee run` of a few tests in a subprocess
# pytest plugins the child runs do not use; leaving them out saves seconds of imports per process
QUIET_PLUGINS = ["-p", "no:hypothesispytest", "-p", "no:benchmark", "-p", "no:cacheprovider"]


def subprocess_env() -> dict[str, str]:
    """The environment for child runs: this checkout importable (for `-p fixtures.reporting`)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("PYTEST_ADDOPTS", None)
    return env


def run_command(argv: list[str], cwd: pathlib.Path | None = None,
                timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, cwd=cwd or REPO, env=subprocess_env(), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{' '.join(argv)} did not finish within {timeout} s:\n{exc.stdout}\n{exc.stderr}")


def schema_errors(path: pathlib.Path) -> list[str]:
    """Messages of every violation of the Jenkins JUnit schema (junit-10.xsd) in `path`."""
    from lxml import etree
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    doc = etree.parse(str(path))
    if schema.validate(doc):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def python() -> str:
    return sys.executable
