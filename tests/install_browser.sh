#!/usr/bin/env bash
# Install Debian's chromium for the browser tests (tests marked `browser`) when it is missing.
# Playwright drives this system browser (executable_path=/usr/bin/chromium); it never downloads one.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium fonts-dejavu-core
/usr/bin/chromium --version
