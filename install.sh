#!/usr/bin/env bash
# Install what referee needs on Debian 12 (run as root): the SIP peers and tools it drives, and
# the referee package itself in a virtual environment owned by the project (.venv), because
# Debian's python3 refuses system-wide `pip install` (PEP 668, externally-managed-environment).
#
# Afterwards, in any new shell:
#   referee ...                 (linked into /usr/local/bin, or ~/.local/bin when not root)
#   .venv/bin/python -m pytest  (referee's own tests)
#
# REFEREE_VENV=DIR puts the environment elsewhere; REFEREE_PYTHON=PATH picks the interpreter
# (default: Debian's /usr/bin/python3.11 — the pjsua2-python wheel is built for CPython 3.11 only).
set -euo pipefail
cd "$(dirname "$0")"
HERE="$(pwd)"
VENV="${REFEREE_VENV:-$HERE/.venv}"
export DEBIAN_FRONTEND=noninteractive

if command -v apt-get >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        python3 python3-venv \
        sip-tester baresip-core linphone-cli twinkle-console kamailio \
        tshark tcpdump nftables iproute2 openssl procps chromium fonts-dejavu-core >/dev/null
fi

PY="${REFEREE_PYTHON:-}"
if [ -z "$PY" ]; then
    for candidate in /usr/bin/python3.11 /usr/bin/python3; do
        if [ -x "$candidate" ]; then PY="$candidate"; break; fi
    done
fi
if [ -z "$PY" ]; then
    echo "install.sh: no python3 found (apt-get install python3 python3-venv)" >&2
    exit 2
fi
version="$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$version" != "3.11" ]; then
    echo "install.sh: $PY is Python $version; referee needs CPython 3.11 (the pjsua2-python wheel is cp311)." >&2
    echo "            Set REFEREE_PYTHON to a Python 3.11 interpreter." >&2
    exit 2
fi

# A venv made by an interpreter that has since gone is rebuilt, not reused.
if [ -d "$VENV" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$HERE[dev]"

# Put the console script on PATH for every new shell.
if [ -w /usr/local/bin ]; then
    BIN=/usr/local/bin
else
    BIN="$HOME/.local/bin"
    mkdir -p "$BIN"
fi
ln -sf "$VENV/bin/referee" "$BIN/referee"
"$BIN/referee" --version >/dev/null
echo "referee installed: $BIN/referee -> $VENV/bin/referee"
case ":$PATH:" in
    *":$BIN:"*) ;;
    *) echo "note: $BIN is not on your PATH; add it (export PATH=\"$BIN:\$PATH\")" ;;
esac
