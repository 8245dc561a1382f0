"""Launch Kamailio as the PBX of a referee profile: its users and passwords become config defines.

    python duts/kamailio-pbx/launch.py --profile duts/kamailio-pbx.toml --host 127.0.0.1 --port 5080

Reads the profile's [users] (at most 8; every one needs a password), then replaces itself with
`kamailio -DD -E -f duts/kamailio-pbx/kamailio.cfg -l udp:HOST:PORT -l tcp:HOST:PORT ...` with
-A 'U1="<extension>"' -A 'P1="<password>"' for each user, so the passwords are written only in
the profile. The profile's `domain`, if any, becomes a Kamailio alias. Nothing here prints a
password.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from referee.dut.kamailio import KamailioError, find_kamailio  # noqa: E402
from referee.dut.profile import ProfileError, load_profile  # noqa: E402

CFG = pathlib.Path(__file__).resolve().parent / "kamailio.cfg"
MAX_USERS = 8
UNSAFE = set('"\\\n\r')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--debug", action="store_true", help="log every request (-A WITH_DEBUG)")
    args = parser.parse_args()
    try:
        profile = load_profile(args.profile)
        binary = find_kamailio()
    except (ProfileError, KamailioError) as exc:
        print(f"kamailio-pbx: {exc}", flush=True)
        return 2
    users = list(profile.users.values())
    if len(users) > MAX_USERS:
        print(f"kamailio-pbx: {profile.path}: at most {MAX_USERS} users (found {len(users)})", flush=True)
        return 2
    host = f"[{args.host}]" if ":" in args.host else args.host
    argv = [binary, "-DD", "-E", "-f", str(CFG), "-l", f"udp:{host}:{args.port}", "-l", f"tcp:{host}:{args.port}",
            "-Y", "/tmp", "-a", "no", "-n", "2", "-m", "64", "-M", "8"]
    if args.debug:
        argv += ["-A", "WITH_DEBUG"]
    if profile.domain:
        argv.append(f"--alias={profile.domain}")
    for i, user in enumerate(users, 1):
        if not user.password:
            print(f"kamailio-pbx: {profile.path}: user {user.name!r} has no password "
                  f"(every user of this PBX authenticates)", flush=True)
            return 2
        if UNSAFE & set(user.extension + user.password):
            print(f"kamailio-pbx: {profile.path}: user {user.name!r}: extension and password may not "
                  f"contain quotes, backslashes or line breaks", flush=True)
            return 2
        argv += ["-A", f'U{i}="{user.username or user.extension}"', "-A", f'P{i}="{user.password}"']
    os.execv(binary, argv)
    return 0     # not reached


if __name__ == "__main__":
    sys.exit(main())
