"""Fixtures of the report tests (helpers shared by the test modules are in report_helpers.py)."""

from __future__ import annotations

import subprocess

import pytest

from report_helpers import CHROMIUM_FLAGS, subprocess_env
from tests.programs import require_program


@pytest.fixture
def chromium(tmp_path):
    """run(url, *flags) -> CompletedProcess of headless Chromium with a fresh profile.

    Chromium is installed by ./install.sh: without it these tests fail, naming the package."""
    binary = require_program("chromium")
    runs = iter(range(1000))

    def run(url: str, *flags: str) -> subprocess.CompletedProcess:
        profile = tmp_path / f"chromium-profile-{next(runs)}"
        argv = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags, url]
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=90, env=subprocess_env())
        except subprocess.TimeoutExpired:
            raise AssertionError(f"chromium did not finish within 90 s: {' '.join(argv)}") from None
    return run
