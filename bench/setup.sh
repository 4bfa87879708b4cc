#!/usr/bin/env bash
# Creates bench/.venv: djwire (editable) next to the peers it is compared with.
# The peers live only here, never in djwire's own dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x bench/.venv/bin/python ] || "$PY" -m venv bench/.venv
bench/.venv/bin/pip install -q --upgrade pip
bench/.venv/bin/pip install -q -e '.[redis,uvloop]' \
    'channels==4.3.1' 'daphne' 'uvicorn[standard]' 'channels_redis' 'gunicorn' \
    'picows' 'websockets' 'starlette' 'matplotlib' 'psutil' 'py-spy'
if ! command -v wrk >/dev/null; then
    if command -v apt-get >/dev/null; then
        apt-get install -y -q wrk >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q wrk >/dev/null)
    else
        echo "wrk is missing and apt-get is not available: HTTP benchmarks will not run" >&2
    fi
fi
echo "bench/.venv ready"
