"""Benchmark: highest clean SIP CPS through vos3k vs Kamailio 5.6 stateful relay, same run.

SIPp UAC (customer gateway 127.0.0.10) -> SUT -> SIPp UAS (vendor gateway 127.0.0.21),
UDP, 1 s hold.  vos3k runs with routing, rating (prepaid account) and CDR text files on;
Kamailio runs bench/kamailio/kamailio.cfg (tm, Record-Route, no db) with one UDP worker.
Each step places RATE x SECONDS calls; a step is clean when every call succeeded, SIPp
retransmitted <= 0.1 % of the calls' messages (UAC + UAS) and SIPp kept the rate.  Rates
double until a step is unclean, then bisect twice.  CPU per call is the SUT's
utime+stime delta (/proc/PID/stat, Kamailio: main process + workers) over a step divided
by its calls.  A py-spy profile of vos3k at its highest clean rate goes to
bench/results/profile_cps.txt.  Targets (issue 6): vos3k >= 0.7 x Kamailio.
Writes bench/results/sip_cps.csv and sip_cps.json.  Bounded: well under 8 minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _sip_harness import (
    RESULTS,
    VBIN,
    Kamailio,
    SippUas,
    Vos3k,
    figure,
    kamailio_binary,
    kamailio_version,
    log,
    raise_nofile,
    sipp_stats,
    sipp_uac,
    tree_cpu_s,
    tree_rss_mib,
    wait_or_stop,
    write_result,
    write_scenarios,
)

# This benchmark's own loopback addresses (bench/flood.py uses the harness defaults).
CUST_IP, VEND_IP = "127.0.1.10", "127.0.1.21"
VOS_SIP, KAM_SIP, SSH = ("127.0.1.1", 35060), ("127.0.1.2", 35070), 32322
MESSAGES_PER_CALL = 7  # INVITE 180 200 ACK BYE 200 (+100 from a SUT): retransmission base
HOLD_MS = 1000


def elapsed_s(text: str) -> float | None:
    """SIPp's ElapsedTime column, 'HH:MM:SS' or 'HH:MM:SS:uuuuuu'."""
    try:
        parts = [int(x) for x in text.split(":")]
    except ValueError:
        return None
    if len(parts) not in (3, 4):
        return None
    us = parts[3] if len(parts) == 4 else 0
    return parts[0] * 3600 + parts[1] * 60 + parts[2] + us / 1e6


def creation_time(csv: Path, calls: int) -> float | None:
    """Seconds (at -fd 1 resolution) the UAC needed to create all `calls` calls."""
    try:
        rows = [r.split(";") for r in csv.read_text().splitlines() if r]
    except OSError:
        return None
    if len(rows) < 2 or "TotalCallCreated" not in rows[0]:
        return None
    i_total, i_time = rows[0].index("TotalCallCreated"), rows[0].index("ElapsedTime(C)")
    for row in rows[1:]:
        with contextlib.suppress(ValueError, IndexError):
            if int(row[i_total]) >= calls:
                return elapsed_s(row[i_time])
    return None


def delta(after: dict, before: dict, key: str) -> int:
    return int(after.get(key, 0) - before.get(key, 0))


def run_step(sut: str, pid: int, target: tuple[str, int], rate: int, seconds: float,
             work: Path, scen: tuple[Path, Path], index: int, uas: SippUas) -> dict:  # fmt: skip
    """One step at `rate` CPS; returns its row (clean or not, CPU per call)."""
    calls = max(1, int(rate * seconds))
    name = f"{sut}_{index:02d}_{rate}"
    before = uas.counters()
    cpu0, t0 = tree_cpu_s(pid), time.monotonic()
    uas_cpu0 = tree_cpu_s(uas.proc.pid)
    uac = sipp_uac(work, f"{name}_uac", scen[0], target, rate, calls, HOLD_MS,
                   timeout_s=seconds + 25, limit=max(100, rate * 6), ip=CUST_IP)  # fmt: skip
    uac_rc = wait_or_stop(uac, seconds + 35)
    after = uas.counters()
    cpu1, t1 = tree_cpu_s(pid), time.monotonic() - 1.2
    uas_cpu = tree_cpu_s(uas.proc.pid) - uas_cpu0
    rss = tree_rss_mib(pid)
    s_uac = sipp_stats(work / f"{name}_uac.csv")
    ok = int(s_uac.get("SuccessfulCall(C)", 0))
    failed = int(s_uac.get("FailedCall(C)", 0)) + delta(after, before, "FailedCall(C)")
    retrans = int(s_uac.get("Retransmissions(C)", 0)) + delta(after, before, "Retransmissions(C)")
    created_in = creation_time(work / f"{name}_uac.csv", calls)
    kept_rate = created_in is not None and created_in <= seconds + 1.5
    retrans_pct = 100.0 * retrans / (calls * MESSAGES_PER_CALL)
    clean = uac_rc == 0 and ok == calls and failed == 0 and retrans_pct <= 0.1 and kept_rate
    cpu = cpu1 - cpu0
    row = {
        "sut": sut, "rate_cps": rate, "calls": calls, "successful": ok, "failed": failed,
        "retransmissions": retrans, "retrans_pct": round(retrans_pct, 3),
        "uac_retrans": int(s_uac.get("Retransmissions(C)", 0)),
        "uas_retrans": delta(after, before, "Retransmissions(C)"),
        "created_in_s": created_in, "uac_exit": uac_rc, "clean": int(clean),
        "sut_cpu_s": round(cpu, 2), "sut_cpu_util_pct": round(100 * cpu / (t1 - t0), 1),
        "uas_cpu_util_pct": round(100 * uas_cpu / (t1 - t0), 1),
        "cpu_us_per_call": round(cpu / max(ok, 1) * 1e6, 1), "wall_s": round(t1 - t0, 1),
        "rss_mib": round(rss, 1),
    }  # fmt: skip
    log(f"  {sut:8s} {rate:5d} CPS: {ok}/{calls} ok, {failed} failed, {retrans} retrans "
        f"({retrans_pct:.3f} %), created in {created_in} s, SUT CPU {row['sut_cpu_util_pct']} %"
        f" (SIPp UAS {row['uas_cpu_util_pct']} %)"
        f" = {row['cpu_us_per_call']} us/call -> {'clean' if clean else 'NOT clean'}")  # fmt: skip
    return row


def ramp(sut: str, pid: int, target, work: Path, scen, start: int, max_rate: int,
         seconds: float, budget_s: float, uas: SippUas,
         drain=None) -> tuple[dict | None, list[dict]]:  # fmt: skip
    """Double from `start` until unclean, then bisect twice; the best clean row and all rows."""
    rows: list[dict] = []
    best: dict | None = None
    bad: int | None = None
    rate = start
    started = time.monotonic()
    refinements = 0
    while rate and time.monotonic() - started < budget_s:
        if drain is not None:
            drain()
        row = run_step(sut, pid, target, rate, seconds, work, scen, len(rows), uas)
        rows.append(row)
        if row["clean"]:
            best = row if best is None or rate > best["rate_cps"] else best
        else:
            bad = rate if bad is None else min(bad, rate)
        if bad is None:
            rate = rate * 2 if rate * 2 <= max_rate else 0
            continue
        if refinements >= 2:
            break
        low = best["rate_cps"] if best else 0
        nxt = (low + bad) // 2
        if nxt <= low or nxt >= bad or bad - low < max(10, low // 20):
            break
        refinements += 1
        rate = nxt
    return best, rows


def profile_vos3k(vos: Vos3k, rate: int, work: Path, scen, seconds: float,
                  uas: SippUas) -> tuple[Path | None, dict | None]:  # fmt: skip
    """py-spy (sampling, --nonblocking) on vos3k during one step at `rate` CPS."""
    spy = VBIN / "py-spy"
    if not spy.exists():
        log("installing py-spy into the venv for the profile (not a project dependency)")
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run([str(VBIN / "python"), "-m", "pip", "install", "-q", "py-spy"],
                           timeout=180, capture_output=True)  # fmt: skip
    if not spy.exists():
        return None, None
    raw = work / "profile.raw"
    proc = subprocess.Popen(
        [
            str(spy),
            "record",
            "--pid",
            str(vos.pid),
            "--format",
            "raw",
            "--rate",
            "250",
            "--nonblocking",
            "--output",
            str(raw),
            "--duration",
            str(int(seconds + 2)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(work / "pyspy.err", "wb"),
    )
    time.sleep(1)
    row = run_step("vos3k-profiled", vos.pid, VOS_SIP, rate, seconds, work, scen, 99, uas)
    wait_or_stop(proc, seconds + 20)
    if not raw.exists():
        log(f"py-spy wrote nothing: {(work / 'pyspy.err').read_text(errors='replace')[-300:]}")
        return None, row
    out = RESULTS / "profile_cps.txt"
    out.write_text(summarise_profile(raw, rate, row))
    return out, row


def _frame_name(frame: str) -> str:
    """'func (path/to/file.py:123)' -> 'vos3k/sip/b2bua.py:func' (the line dropped)."""
    func, _, where = frame.rpartition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("/vos3k/", "/site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            path = ("vos3k/" + path) if marker == "/vos3k/" else path
            break
    return f"{path}:{func}"


def summarise_profile(raw: Path, rate: int, row: dict) -> str:
    """Top 25 functions by cumulative and by self time from py-spy's collapsed stacks."""
    total = 0
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    own_module: Counter[str] = Counter()
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame_name(f) for f in stack.split(";") if " (" in f]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        own_module[frames[-1].split(":", 1)[0]] += n
        for name in set(frames):
            cumulative[name] += n
    lines = [
        "vos3k CPS hot path: py-spy (sampling 250 Hz, --nonblocking) on the twistd process",
        f"during one bench/sip_cps.py step at {rate} CPS, 1 s hold, routing + rating + CDR on:",
        f"  {row['successful']}/{row['calls']} calls ok, SUT CPU {row['sut_cpu_util_pct']} %, "
        f"{row['cpu_us_per_call']} us CPU per call.  {total} samples (non-idle).",
        "Percent = share of the samples in which the function was running (self) or on the",
        "stack (cumulative).  Names: file:function.",
        "",
        "Top 25 by cumulative time, vos3k code (the reactor/twistd frames above it are on",
        "nearly every sample and are left out)",
        f"{'cum %':>7} {'self %':>7}  function",
    ]
    ours = Counter({k: v for k, v in cumulative.items() if k.startswith("vos3k/")})
    for name, n in ours.most_common(25):
        lines.append(f"{100 * n / total:7.1f} {100 * own[name] / total:7.1f}  {name}")
    lines += ["", "Top 25 by self time, all code", f"{'self %':>7} {'cum %':>7}  function"]
    for name, n in own.most_common(25):
        lines.append(f"{100 * n / total:7.1f} {100 * cumulative[name] / total:7.1f}  {name}")
    lines += ["", "Self time by file (top 15)", f"{'self %':>7}  file"]
    for name, n in own_module.most_common(15):
        lines.append(f"{100 * n / total:7.1f}  {name}")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="call creation time per step")
    ap.add_argument("--start", type=int, default=50, help="first rate (CPS)")
    ap.add_argument("--max-rate", type=int, default=6400)
    ap.add_argument("--budget", type=float, default=150, help="seconds of ramp per SUT")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--no-kamailio", action="store_true")
    ap.add_argument(
        "--media",
        choices=("on", "off"),
        default="on",
        help="vos3k's RTP proxy (SS_MEDIAPROXYMODE); Kamailio relays SIP only",
    )
    args = ap.parse_args()
    raise_nofile(65536)
    work = Path(tempfile.mkdtemp(prefix="vos3k-cps."))
    scen = write_scenarios(work, HOLD_MS)
    rows: list[dict] = []
    figures: list[dict] = []
    vos_best = kam_best = None
    profile_path = profiled = None

    log(
        f"vos3k (routing + rating + CDR files + media proxy {args.media}), 1 s hold, "
        f"work dir {work}"
    )
    vos = Vos3k(work, sip=VOS_SIP, ssh_port=SSH, uac_ip=CUST_IP, uas_ip=VEND_IP)
    uas = None
    try:
        vos.start()
        uas = SippUas(work, "vos3k_uas", scen[1], ip=VEND_IP)
        vos.provision(lines=100000, media=args.media)
        cdr0 = vos.cdr_files_lines()

        def drain() -> None:
            for _ in range(40):
                if int(vos.stats().get("current_calls", 0) or 0) == 0:
                    return
                time.sleep(0.5)

        vos_best, vrows = ramp("vos3k", vos.pid, VOS_SIP, work, scen, args.start,
                               args.max_rate, args.seconds, args.budget, uas, drain)  # fmt: skip
        rows += vrows
        if not args.no_profile:
            prate = vos_best["rate_cps"] if vos_best else args.start
            drain()
            profile_path, profiled = profile_vos3k(vos, prate, work, scen, max(args.seconds, 8),
                                                   uas)  # fmt: skip
        time.sleep(2)
        cdrs = vos.cdr_files_lines() - cdr0
        placed = sum(r["successful"] for r in rows if r["sut"] == "vos3k") + (
            profiled["successful"] if profiled else 0
        )
        log(f"  vos3k wrote {cdrs} CDR lines for {placed} answered calls; alive={vos.alive()}")
    except Exception as exc:  # a failed SUT is reported; the other still runs
        log(f"vos3k run failed: {exc}")
    finally:
        if uas is not None:
            uas.stop()
        vos.stop()

    binary = None if args.no_kamailio else kamailio_binary()
    kversion = kamailio_version(binary) if binary else ""
    if binary:
        log(f"Kamailio {kversion} stateful relay (tm, Record-Route), 1 UDP worker (-n 1)")
        kam = Kamailio(work, binary, sip=KAM_SIP, uas_ip=VEND_IP)
        uas = None
        try:
            kam.start()
            uas = SippUas(work, "kamailio_uas", scen[1], ip=VEND_IP)
            kam_best, krows = ramp("kamailio", kam.pid, KAM_SIP, work, scen,
                                   max(args.start, 100), args.max_rate * 2, args.seconds,
                                   args.budget, uas)  # fmt: skip
            rows += krows
        except Exception as exc:
            log(f"kamailio run failed: {exc}")
        finally:
            if uas is not None:
                uas.stop()
            kam.stop()
    elif not args.no_kamailio:
        log("Kamailio: NOT INSTALLED (apt-get install -y kamailio needs root); no anchor")

    v_cps = vos_best["rate_cps"] if vos_best else 0
    k_cps = kam_best["rate_cps"] if kam_best else 0
    anchor_what = f"Kamailio {kversion} tm relay, 1 worker" if binary else "Kamailio not installed"
    ratio = round(v_cps / k_cps, 2) if k_cps else None
    log("")
    log(f"highest clean CPS   vos3k {v_cps}   Kamailio {k_cps if binary else 'n/a'}   "
        f"ratio {ratio if ratio is not None else 'n/a'} (target >= 0.7)")  # fmt: skip
    if vos_best:
        log(f"CPU per call        vos3k {vos_best['cpu_us_per_call']} us at {v_cps} CPS")
    if kam_best:
        log(f"CPU per call        Kamailio {kam_best['cpu_us_per_call']} us at {k_cps} CPS")
    for name, best in (("vos3k", vos_best), ("Kamailio", kam_best)):
        if best:
            busy = best["cpu_us_per_call"] * best["rate_cps"] / 1e4
            log(f"{name} busy while calls were created at its best clean rate: ~{busy:.0f} % "
                "of a core (CPU per call x CPS); the SIPp UAC, UAS and other work share the "
                "same 2 cores")  # fmt: skip
    if profile_path:
        log(f"profile: {profile_path.relative_to(RESULTS.parents[1])}")
    figures.append(figure("SIP CPS, highest clean (1 s hold, UDP)", v_cps,
                          k_cps if binary else "not installed", "calls/s",
                          ">= 0.7 x Kamailio", anchor_what, ratio))  # fmt: skip
    v_us = vos_best["cpu_us_per_call"] if vos_best else ""
    k_us = kam_best["cpu_us_per_call"] if kam_best else ""
    figures.append(figure("SIP CPU per call at highest clean CPS", v_us,
                          k_us if binary else "not installed", "µs/call", "printed",
                          anchor_what,
                          round(v_us / k_us, 2) if v_us and k_us else None))  # fmt: skip
    write_result("sip_cps", rows, figures)
    return 0 if vos_best else 1


if __name__ == "__main__":
    sys.exit(main())
