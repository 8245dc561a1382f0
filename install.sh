#!/usr/bin/env bash
# Install what referee needs on Debian 12 (run as root): the SIP peers and tools it drives, and
# the referee package itself (editable, with its test extras).
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
if command -v apt-get >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends \
        sip-tester baresip-core linphone-cli twinkle-console kamailio \
        tshark tcpdump nftables iproute2 openssl procps chromium fonts-dejavu-core >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e '.[dev]'
