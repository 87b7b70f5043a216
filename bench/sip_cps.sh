#!/bin/sh
# SIP CPS ramp, vos3k vs Kamailio 5.6 stateful relay (1 worker), back to back (issue 6, 11).
# Usage: bench/sip_cps.sh [bench/sip_cps.py options]   (bounded: under 8 minutes)
# Loopback only (127.0.0.0/8); stops only the processes it started, by PID.
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
command -v sipp >/dev/null 2>&1 || { echo "sipp not installed (apt-get install sip-tester)"; exit 1; }
exec timeout -k 20 600 "$PY" bench/sip_cps.py "$@"
