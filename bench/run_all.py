"""`make bench`: run every benchmark in bench/ in turn, then write bench/results/LATEST.md.

Each benchmark is a bench/*.py module with a main() or a bench/*.sh script; one that
fails is reported and the others still run.  Quick micro-benchmarks go first, then the
loopback load tests (sip_cps before concurrency, which takes its call rate from it).
Each one's printed output is shown and kept in bench/results/NAME.log; bench/report.py
then assembles LATEST.md from the NAME.json files and those logs.  Every benchmark has
its own time limit and the sum stays under 20 minutes on the 2-core machine.
The exit status is 1 if any failed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_TIMEOUT_S = 240
# Long runs, in this order, last; seconds each (the scripts bound themselves below these).
LAST = {"rtp.sh": 300, "flood.py": 240, "sip_cps.sh": 600, "concurrency.sh": 560}
NOT_BENCHMARKS = {"run_all.py", "report.py"}


def benchmarks() -> list[Path]:
    found = [
        p
        for p in sorted(HERE.glob("*.py")) + sorted(HERE.glob("*.sh"))
        if p.name not in NOT_BENCHMARKS
        and not p.name.startswith("_")
        # helpers driven by a .sh of the same family, not benchmarks of their own
        and not (p.suffix == ".py" and p.with_suffix(".sh").exists())
        and p.name not in ("rtp_load.py", "rtp_vos3k_relay.py")
    ]
    rank = {name: i for i, name in enumerate(LAST)}
    return sorted(found, key=lambda p: (rank.get(p.name, -1), p.name))


def run_one(path: Path) -> tuple[int | str, float]:
    """Run one benchmark, echoing and keeping its output; (exit code or 'timeout', seconds)."""
    limit = LAST.get(path.name, DEFAULT_TIMEOUT_S)
    # coreutils timeout bounds it even when it prints nothing (TERM, then KILL 20 s later)
    command = ["timeout", "-k", "20", str(limit)]
    command += [sys.executable, str(path)] if path.suffix == ".py" else ["bash", str(path)]
    for stale in (RESULTS / f"{path.stem}.json", RESULTS / f"{path.stem}.log"):
        stale.unlink(missing_ok=True)
    started = time.monotonic()
    with open(RESULTS / f"{path.stem}.log", "w", encoding="utf-8") as keep:
        proc = subprocess.Popen(command, cwd=HERE.parent, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            keep.write(line)
        returncode = proc.wait()
    code: int | str = "timeout" if returncode in (124, 137) else returncode
    return code, time.monotonic() - started


def main() -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    failed, times = [], {}
    started = time.monotonic()
    for path in benchmarks():
        print(f"=== {path.name}", flush=True)
        code, seconds = run_one(path)
        times[path.name] = round(seconds, 1)
        print(f"--- {path.name}: {'ok' if code == 0 else f'FAILED ({code})'} in {seconds:.1f} s",
              flush=True)  # fmt: skip
        if code != 0:
            failed.append(path.name)
    wall = time.monotonic() - started
    ran = len(times)
    summary = {"wall_s": round(wall, 1), "ok": ran - len(failed), "failed": failed,
               "seconds": times}  # fmt: skip
    (RESULTS / "run_all.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"{ran - len(failed)} benchmarks ran, {len(failed)} failed"
          + (f": {', '.join(failed)}" if failed else "") + f"; wall time {wall / 60:.1f} min",
          flush=True)  # fmt: skip
    print("=== report.py", flush=True)
    subprocess.run([sys.executable, str(HERE / "report.py")], cwd=HERE.parent, timeout=60)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
