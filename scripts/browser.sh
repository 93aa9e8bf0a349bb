#!/usr/bin/env bash
# Headless Chromium and its WebDriver from Debian's packages, for the console's browser tests (tests/e2e/test_console.py).
# A browser build that a tool downloads by itself cannot be had here, so Selenium is pointed at these two files.
# Idempotent: quick when both are installed.
set -euo pipefail
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
