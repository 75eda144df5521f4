#!/usr/bin/env bash
# The demo: installs anyoai (with trio) in .venv-demo, then runs `python -m anyoai.demo`, which
# starts the bundled fake OpenAI server and drives it through anyoai under asyncio and trio.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv-demo/bin/python ]; then
    "$python" -m venv .venv-demo
    .venv-demo/bin/python -m pip install --quiet --upgrade pip
fi
.venv-demo/bin/python -m pip install --quiet -e '.[trio]'
exec .venv-demo/bin/python -m anyoai.demo "$@"
