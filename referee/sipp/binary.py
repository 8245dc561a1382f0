"""Locate the `sipp` executable and ask it for its version."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess

from referee.sipp.errors import SippNotFound

INSTALL_HINT = "install it with: apt-get install sip-tester"


def find_sipp(binary: str | None = None) -> str:
    """Absolute path of sipp: `binary` if given, else $REFEREE_SIPP, else `sipp` on PATH."""
    wanted = binary or os.environ.get("REFEREE_SIPP") or "sipp"
    path = shutil.which(wanted)
    if path is None:
        where = "on PATH" if os.sep not in wanted else "at that path"
        raise SippNotFound(f"SIPp executable {wanted!r} not found {where}; {INSTALL_HINT}")
    return path


@functools.lru_cache(maxsize=8)
def sipp_version(binary: str | None = None) -> str:
    """Version string such as '3.6.1' (empty if SIPp does not say)."""
    path = find_sipp(binary)
    try:
        proc = subprocess.run([path, "-v"], capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return ""
    match = re.search(r"SIPp v?(\d+\.\d+(?:\.\d+)?)", proc.stdout + proc.stderr)
    return match.group(1) if match else ""
