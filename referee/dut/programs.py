"""Find the programs the suite launches, under the names their Debian packages install.

`find_program("twinkle-console")` returns the absolute path of the executable, looking on PATH
and then in the sbin directories (Debian installs kamailio and nft in /usr/sbin, which is not
on every user's PATH). A missing program raises ProgramMissing with the fix:

    program 'twinkle-console' not found (looked on PATH and in /usr/sbin, /usr/local/sbin, /sbin);
    install it: apt-get install twinkle-console, or run ./install.sh
"""

from __future__ import annotations

import os
import shutil

from .driver import ProgramMissing

#: where Debian puts system programs that a plain user's PATH may lack
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")

#: executable -> the Debian package that installs it (the packages install.sh installs)
PACKAGES = {
    "sipp": "sip-tester",
    "baresip": "baresip-core",
    "linphonec": "linphone-cli",
    "twinkle-console": "twinkle-console",
    "kamailio": "kamailio",
    "tshark": "tshark",
    "tcpdump": "tcpdump",
    "nft": "nftables",
    "ip": "iproute2",
    "chromium": "chromium",
}


def install_hint(program: str, package: str | None = None) -> str:
    """The fix for a missing program, e.g. 'install it: apt-get install kamailio, or run ./install.sh'."""
    package = package or PACKAGES.get(os.path.basename(program))
    if package:
        return f"install it: apt-get install {package}, or run ./install.sh"
    return "install it (./install.sh does not provide it), or fix the profile"


def find_program(program: str, package: str | None = None) -> str:
    """Absolute path of `program` (a name, or a path). Raises ProgramMissing with the fix."""
    if not program:
        raise ProgramMissing("no program name given")
    if os.sep in program:
        if os.path.isfile(program) and os.access(program, os.X_OK):
            return program
        raise ProgramMissing(f"program {program!r} does not exist or is not executable; "
                             f"{install_hint(program, package)}")
    found = shutil.which(program) or shutil.which(program, path=os.pathsep.join(SBIN_DIRS))
    if found is None:
        raise ProgramMissing(f"program {program!r} not found (looked on PATH and in {', '.join(SBIN_DIRS)}); "
                             f"{install_hint(program, package)}")
    return found
