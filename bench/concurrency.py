"""Benchmark: 10,000 concurrent calls held through vos3k; failed calls, RSS and CPU (issue 6).

SIPp UAC (customer gateway) -> vos3k (routing + rating + CDR on) -> SIPp UAS (vendor),
UDP.  Calls are placed at --rate CPS (default: 60 % of the highest clean CPS that
bench/sip_cps.py measured, else 60) until --calls are up, and each is held until all are
up plus --hold seconds, so --calls are up together for --hold s.  RSS (/proc/PID/statm)
and CPU (/proc/PID/stat utime+stime) of vos3k are sampled every second.  When the ramp
would not fit the time budget, fewer calls are placed and the row says how many.
Media: SS_MEDIAPROXYMODE=off by default (signalling only; `--media on` relays RTP
ports for every call, which needs 4 UDP sockets per call).  Target: 0 failed, RSS
< 300 MiB.  Writes bench/results/concurrency.csv and concurrency.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _sip_harness import (
    CLK_TCK,
    RESULTS,
    SippUas,
    Vos3k,
    figure,
    log,
    proc_cpu_ticks,
    raise_nofile,
    rss_mib,
    sipp_stats,
    sipp_uac,
    stop_pid,
    write_result,
    write_scenarios,
)

CUST_IP, VEND_IP = "127.0.2.10", "127.0.2.21"
VOS_SIP, SSH = ("127.0.2.1", 35060), 32422
TARGET_RSS_MIB = 300
# The issue names no anchor here; a Kamailio tm relay keeps no per-call state to compare.
NO_ANCHOR = "none defined (Kamailio tm relay keeps no call state)"


def default_rate() -> float:
    """60 % of the highest clean CPS of the last sip_cps run, else 60 (80 % failed calls
    in a 100 s ramp: vos3k slows down as thousands of calls are up)."""
    try:
        doc = json.loads((RESULTS / "sip_cps.json").read_text())
        best = float(doc["figures"][0]["vos3k"])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return 60.0
    return max(20.0, round(best * 0.6))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=10_000)
    ap.add_argument("--hold", type=float, default=60.0, help="seconds all calls are up together")
    ap.add_argument("--rate", type=float, default=None, help="CPS (default: from sip_cps)")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds for the whole run")
    ap.add_argument("--media", choices=("off", "on"), default="off")
    args = ap.parse_args()
    rate = args.rate or default_rate()
    # the ramp up and the BYE ramp down take calls/rate each, plus the hold and margins
    fits = int(max(rate, (args.budget - args.hold - 40) / 2 * rate))
    calls = min(args.calls, fits)
    ramp_s = calls / rate
    hold_ms = int((ramp_s + args.hold) * 1000)
    nofile = raise_nofile(max(65536, calls * 5 + 4096))
    work = Path(tempfile.mkdtemp(prefix="vos3k-conc."))
    uac_xml, uas_xml = write_scenarios(work, hold_ms)
    log(f"vos3k: {calls} calls at {rate:g} CPS (ramp {ramp_s:.0f} s), all up for {args.hold:g} s, "
        f"SS_MEDIAPROXYMODE={args.media}, RLIMIT_NOFILE {nofile}, work dir {work}")  # fmt: skip
    if calls < args.calls:
        log(f"note: {args.calls} calls at {rate:g} CPS do not fit the {args.budget:g} s budget; "
            f"placing {calls}")  # fmt: skip
    rtp = "12000-59999" if args.media == "on" else "20000-29999"
    vos = Vos3k(work, rtp_ports=rtp, nofile=nofile, sip=VOS_SIP, ssh_port=SSH,
                uac_ip=CUST_IP, uas_ip=VEND_IP)  # fmt: skip
    uas = uac = None
    samples: list[dict] = []
    peak_calls = 0
    vos_current = None
    try:
        vos.start()
        vos.provision(lines=calls + 1000, media=args.media)
        uas = SippUas(work, "conc_uas", uas_xml, ip=VEND_IP)
        rss0 = rss_mib(vos.pid)
        cpu0 = proc_cpu_ticks(vos.pid)
        t0 = time.monotonic()
        uac = sipp_uac(work, "conc_uac", uac_xml, VOS_SIP, rate, calls, hold_ms,
                       timeout_s=args.budget, limit=calls, ip=CUST_IP)  # fmt: skip
        plateau: list[tuple[float, int]] = []  # (t, cpu ticks) while all calls are up
        asked = False
        while uac.poll() is None and time.monotonic() - t0 < args.budget:
            time.sleep(1)
            t = time.monotonic() - t0
            up = int(sipp_stats(work / "conc_uas.csv").get("CurrentCall", 0))
            row = {"t_s": round(t, 1), "uas_current_calls": up,
                   "rss_mib": round(rss_mib(vos.pid), 1),
                   "cpu_s": round((proc_cpu_ticks(vos.pid) - cpu0) / CLK_TCK, 2)}  # fmt: skip
            samples.append(row)
            peak_calls = max(peak_calls, up)
            if ramp_s + 2 <= t <= ramp_s + args.hold - 2:
                plateau.append((t, proc_cpu_ticks(vos.pid)))
                if not asked and t >= ramp_s + args.hold / 2:
                    asked = True  # one look at vos3k's own count mid-plateau
                    vos_current = vos.stats().get("current_calls")
        uac_rc = uac.wait(30) if uac.poll() is None else uac.returncode
        elapsed = time.monotonic() - t0
        cpu_total = (proc_cpu_ticks(vos.pid) - cpu0) / CLK_TCK
        rss_peak = max((s["rss_mib"] for s in samples), default=0.0)
        rss_end = rss_mib(vos.pid)
    finally:
        stop_pid(uac)
        if uas is not None:
            uas.stop()
        vos.stop()
    s_uac = sipp_stats(work / "conc_uac.csv")
    ok = int(s_uac.get("SuccessfulCall(C)", 0))
    failed = int(s_uac.get("FailedCall(C)", 0))
    retrans = int(s_uac.get("Retransmissions(C)", 0))
    plateau_cpu = (
        100 * (plateau[-1][1] - plateau[0][1]) / CLK_TCK / (plateau[-1][0] - plateau[0][0])
        if len(plateau) > 1
        else None
    )
    log(f"calls placed {calls}, successful {ok}, failed {failed}, UAC retransmissions {retrans}, "
        f"SIPp exit {uac_rc}, {elapsed:.0f} s")  # fmt: skip
    log(f"peak concurrent (UAS open calls) {peak_calls}; vos3k `stats` current_calls mid-hold "
        f"{vos_current}")  # fmt: skip
    log(f"vos3k RSS idle {rss0:.1f} MiB, peak {rss_peak:.1f} MiB (target < {TARGET_RSS_MIB}), "
        f"after {rss_end:.1f} MiB")  # fmt: skip
    log(f"vos3k CPU {cpu_total:.1f} s in all = {cpu_total / max(ok, 1) * 1e6:.0f} us per call; "
        f"while all {peak_calls} calls were up: "
        f"{plateau_cpu if plateau_cpu is None else round(plateau_cpu, 1)} % of a core")  # fmt: skip
    reached = f"{peak_calls} of {args.calls}" if peak_calls < args.calls else str(peak_calls)
    note = (f"{rate:g} CPS ramp, hold {args.hold:g} s, media proxy {args.media}, "
            f"RLIMIT_NOFILE {nofile}; "
            f"{ok} ok / {failed} failed")  # fmt: skip
    figures = [
        figure("Concurrent calls held (0 failed is the target)", reached, NO_ANCHOR,
               "calls", "10,000, 0 failed", note),
        figure("Concurrency: failed calls", failed, NO_ANCHOR, "calls", "0", note),
        figure("Concurrency: vos3k RSS at peak", round(rss_peak, 1), NO_ANCHOR, "MiB",
               f"< {TARGET_RSS_MIB} MiB", f"{peak_calls} calls up; idle {rss0:.1f} MiB"),
        figure("Concurrency: vos3k CPU while all calls up", round(plateau_cpu or 0, 1),
               NO_ANCHOR, "% of a core", "printed", f"{peak_calls} calls, no media"
               if args.media == "off" else f"{peak_calls} calls, media proxy on"),
    ]  # fmt: skip
    write_result("concurrency", samples, figures)
    return 0 if ok and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
