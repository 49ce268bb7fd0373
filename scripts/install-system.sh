#!/usr/bin/env bash
# System packages the sandboxes and the browser tests need. Installs only what is missing, and only as root:
# elsewhere it says what to install and carries on (the tests that need them say so too).
set -euo pipefail
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "cellbox: please install: ${missing[*]} (apt-get install -y ${missing[*]})" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
