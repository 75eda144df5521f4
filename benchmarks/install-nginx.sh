#!/usr/bin/env bash
# Install nginx from Debian's packages for benchmarks/nginx.py (the fake OpenAI server).
# Idempotent: does nothing when nginx is already installed.
set -euo pipefail

if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends nginx-light \
    || $SUDO apt-get install -y --no-install-recommends nginx
