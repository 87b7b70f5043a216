#!/bin/sh
# RTP relay benchmark (issue 8): the most concurrent G.711 calls (two 50 pps streams of
# 172-byte packets each) relayed at < 1 % loss, vos3k vs rtpengine userspace, loopback.
# Usage: bench/rtp.sh [SECONDS_PER_STEP]   (bounded: well under 5 minutes in all)
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
SECONDS_PER_STEP=${1:-3}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

echo "vos3k relay (one Python process, epoll reactor):"
timeout 150 "$PY" bench/rtp_load.py vos3k --seconds "$SECONDS_PER_STEP" --start 200 \
    --max-calls 3200 --json "$OUT/vos3k.json"

if ! command -v rtpengine >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y rtpengine-daemon >/dev/null 2>&1 || true
    fi
fi
if command -v rtpengine >/dev/null 2>&1; then
    echo "rtpengine userspace (--table=-1, ng protocol over UDP):"
    timeout 150 "$PY" bench/rtp_load.py rtpengine --seconds "$SECONDS_PER_STEP" --start 200 \
        --max-calls 6400 --json "$OUT/rtpengine.json"
else
    echo "rtpengine: NOT INSTALLED (apt-get install -y rtpengine-daemon failed); no comparison"
fi

"$PY" - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
v = json.loads((out / "vos3k.json").read_text())
print(f"vos3k:     {v['max_calls']} calls, {v['max_pps']} pps, {v['us_per_packet']} us CPU/packet")
r_path = out / "rtpengine.json"
if r_path.exists():
    r = json.loads(r_path.read_text())
    print(f"rtpengine: {r['max_calls']} calls, {r['max_pps']} pps, {r['us_per_packet']} us CPU/packet")
    if r["max_calls"]:
        print(f"ratio vos3k/rtpengine (calls at < 1 % loss): {v['max_calls'] / r['max_calls']:.2f}")
    if v["us_per_packet"] and r["us_per_packet"]:
        print(f"ratio by CPU per packet: {r['us_per_packet'] / v['us_per_packet']:.2f}")
    if v["generator_bound"] or r["generator_bound"]:
        print("note: the load generator was the limit in at least one run (a lower bound)")
PY
