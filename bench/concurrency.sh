#!/bin/sh
# 10,000 concurrent calls held 60 s through vos3k: failed calls, RSS, CPU (issue 6, 11).
# Usage: bench/concurrency.sh [bench/concurrency.py options]   (bounded: under 9 minutes)
# Loopback only (127.0.0.0/8); stops only the processes it started, by PID.
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
command -v sipp >/dev/null 2>&1 || { echo "sipp not installed (apt-get install sip-tester)"; exit 1; }
# 10,000 calls need far more descriptors than the usual 1024 (root may raise the hard limit)
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec timeout -k 20 540 "$PY" bench/concurrency.py "$@"
