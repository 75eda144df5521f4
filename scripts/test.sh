#!/usr/bin/env bash
# The one command that runs every check on a fresh machine: installs tox in a private
# virtualenv (.venv-tox), then runs tox's default environments (lint, type, tests, storage,
# docs, conformance). The storage environment installs the object-storage emulators: moto and
# fake-gcs-server with pip, Azurite with npm (tests/storage/package-lock.json). The conformance
# environment installs Prism with npm and llama-cpp-python with pip (it compiles from source
# the first time: several minutes).
# Data shared with other projects is found through environment variables (see README):
#   ANYOAI_RECORDINGS   folder of recorded OpenAI/Azure exchanges (real-traffic tests)
#   TIKTOKEN_CACHE_DIR  tiktoken's encodings, for offline token counting
#   ANYOAI_OPENAI_SPEC  the official OpenAI OpenAPI spec (conformance)
#   ANYOAI_AZURE_SPEC   Azure OpenAI's inference spec (conformance)
#   ANYOAI_TEST_GGUF    a GGUF model for llama.cpp's server (conformance)
# Extra arguments go to tox, e.g. `bash scripts/test.sh -e tests -- -k stream`.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv-tox/bin/tox ]; then
    "$python" -m venv .venv-tox
    .venv-tox/bin/python -m pip install --quiet --upgrade pip
    .venv-tox/bin/python -m pip install --quiet 'tox>=4.11'
fi
exec .venv-tox/bin/tox run "$@"
