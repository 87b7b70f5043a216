"""`make bench`: run every benchmark in bench/ in turn and print its figures.

Each benchmark is a bench/*.py module with a main() or a bench/*.sh script; one that
fails is reported and the others still run.  The exit status is 1 if any failed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIMEOUT_S = 900


def benchmarks() -> list[Path]:
    found = sorted(
        p for p in HERE.glob("*.py") if p.name != "run_all.py" and not p.name.startswith("_")
    )
    return found + sorted(HERE.glob("*.sh"))


def main() -> int:
    failed = []
    for path in benchmarks():
        command = [sys.executable, str(path)] if path.suffix == ".py" else ["bash", str(path)]
        print(f"=== {path.name}", flush=True)
        started = time.monotonic()
        try:
            code = subprocess.run(command, cwd=HERE.parent, timeout=TIMEOUT_S).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
        print(
            f"--- {path.name}: {'ok' if code == 0 else f'FAILED ({code})'} "
            f"in {time.monotonic() - started:.1f} s",
            flush=True,
        )
        if code != 0:
            failed.append(path.name)
    print(
        f"{len(benchmarks()) - len(failed)} benchmarks ran, {len(failed)} failed"
        + (f": {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
