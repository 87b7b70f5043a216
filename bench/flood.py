"""Benchmark: an INVITE flood from one loopback IP against a legitimate call (prints only).

Issue 10 "Done when": a flood of 10,000 INVITEs/s from 127.0.0.50 for ~10 s must not stop
a legitimate call from 127.0.0.10 (a mapping gateway) to a SIPp UAS from completing.  The
flood runs in its own process (paced in 1 ms slices, each packet a distinct Call-ID and
branch); vos3k keeps SS_SIGNAL_RATE_LIMIT at its default (30 per 2 s), so the pre-parse
guard drops the excess before any parsing (SPEC §3 step 1, §10).

Printed: the flood rate achieved, the packets the guard dropped (`stats`
signalling_dropped_*), whether the legitimate call completed, and its setup time (the
CDR's connect − start, i.e. INVITE arrival to 200 OK) next to the same call without a
flood.  Loopback only; every process is stopped by its own PID.
"""

from __future__ import annotations

import argparse
import json
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _sip_harness as h

FLOOD_IP = "127.0.0.50"
FLOOD_RATE = 10_000
FLOOD_S = 10.0
HOLD_MS = 1000


# ---------------------------------------------------------------- the flooder (child)


def invite(target: tuple[str, int], port: int, n: int) -> bytes:
    host = f"{target[0]}:{target[1]}"
    return (
        f"INVITE sip:100{n % 10000:04d}@{host} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {FLOOD_IP}:{port};branch=z9hG4bKflood{n};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:666@{FLOOD_IP}>;tag=f{n}\r\n"
        f"To: <sip:100{n % 10000:04d}@{host}>\r\n"
        f"Call-ID: flood{n}@{FLOOD_IP}\r\n"
        "CSeq: 1 INVITE\r\n"
        f"Contact: <sip:666@{FLOOD_IP}:{port}>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def flood(target: tuple[str, int], rate: int, seconds: float) -> dict:
    """Send `rate` INVITEs/s for `seconds` from FLOOD_IP; what was actually sent."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((FLOOD_IP, 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    packets = [invite(target, port, n) for n in range(20_000)]  # distinct enough
    sent = errors = 0
    start = time.perf_counter()
    end = start + seconds
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        due = int((now - start) * rate)  # packets owed by now: paced, no bursts to catch up
        while sent < due:
            try:
                sock.sendto(packets[sent % len(packets)], target)
            except (BlockingIOError, OSError):
                errors += 1
            sent += 1
        time.sleep(0.0005)
    elapsed = time.perf_counter() - start
    with_answers = 0
    while True:  # whatever vos3k answered (it should answer nothing: dropped unparsed)
        try:
            sock.recv(65535)
            with_answers += 1
        except (BlockingIOError, OSError):
            break
    sock.close()
    return {"sent": sent, "errors": errors, "elapsed_s": elapsed, "answers": with_answers}


# ---------------------------------------------------------------- the orchestrator


def cdr_setup(vos: h.Vos3k) -> list[dict]:
    conn = sqlite3.connect(f"file:{vos.data / 'vos3k.db'}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(
            "SELECT start_ms, stop_ms, hold_ms, end_reason, sip_code FROM cdrs "
            "WHERE caller_gateway_id = 'CUST' ORDER BY id"
        ).fetchall()
    finally:
        conn.close()
    return [
        {"setup_ms": stop - start - hold, "reason": reason, "code": code, "hold_ms": hold}
        for start, stop, hold, reason, code in rows
    ]


def free_port(ip: str, kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind((ip, 0))
        return probe.getsockname()[1]


def own_ports() -> None:
    """Ports of our own, so this bench runs next to the SIP CPS bench (same harness)."""
    h.VOS3K_SIP = ("127.0.0.1", free_port("127.0.0.1", socket.SOCK_DGRAM))
    h.SSH_PORT = free_port("127.0.0.1", socket.SOCK_STREAM)
    h.UAS_PORT = free_port(h.UAS_IP, socket.SOCK_DGRAM)


def legit_call(work: Path, name: str, uac: Path) -> tuple[int | None, float]:
    """One call from the mapping gateway's address (h.UAC_IP) through vos3k to the UAS."""
    started = time.monotonic()
    cmd = ["sipp", "-sf", str(uac), f"{h.VOS3K_SIP[0]}:{h.VOS3K_SIP[1]}", "-i", h.UAC_IP,
           "-p", str(free_port(h.UAC_IP, socket.SOCK_DGRAM)), "-mi", h.UAC_IP, "-s", h.CALLEE,
           "-nostdin", "-r", "1", "-m", "1", "-d", str(HOLD_MS), "-timeout", "30s",
           "-timeout_error", "-trace_err", "-error_file", str(work / f"{name}.err")]  # fmt: skip
    with open(work / f"{name}.out", "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=out, start_new_session=True)  # fmt: skip
        code = h.wait_or_stop(proc, 40)
    return code, time.monotonic() - started


def dropped(stats: dict) -> dict[str, int]:
    return {
        k: int(v)
        for k, v in stats.items()
        if k.startswith("signalling_dropped") or k == "sip_received"
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=int, default=FLOOD_RATE)
    parser.add_argument("--seconds", type=float, default=FLOOD_S)
    parser.add_argument("--target", default="", help=argparse.SUPPRESS)  # the child's HOST:PORT
    args = parser.parse_args()
    if args.flood_child:
        if not args.target:
            parser.error("--flood-child needs --target HOST:PORT")
        host, _, port = args.target.rpartition(":")
        print(json.dumps(flood((host, int(port)), args.rate, args.seconds)), flush=True)
        return 0
    for tool in ("sipp", "ssh", "ssh-keygen"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            print(f"flood: skipped, {tool} is not installed")
            return 0
    with tempfile.TemporaryDirectory(prefix="vos3k-flood-") as tmp:
        work = Path(tmp)
        own_ports()
        vos = h.Vos3k(work)
        uas = None
        flooder = None
        try:
            vos.start()
            vos.provision(lines=100, media="off")
            vos.shell("param reset SS_SIGNAL_RATE_LIMIT")  # the default: 30 per 2 s
            limit = vos.shell("param show SS_SIGNAL_RATE_LIMIT --json") or "{}"
            uac, uas_xml = h.write_scenarios(work, HOLD_MS)
            uas = h.SippUas(work, "uas", uas_xml)

            quiet_code, _ = legit_call(work, "quiet", uac)
            before = dropped(vos.stats())

            flooder = subprocess.Popen(
                [sys.executable, __file__, "--flood-child", "--rate", str(args.rate),
                 "--seconds", str(args.seconds), "--target", f"{h.VOS3K_SIP[0]}:{h.VOS3K_SIP[1]}"],
                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                start_new_session=True,
            )  # fmt: skip
            time.sleep(min(2.0, args.seconds / 4))  # the flood is on before the call starts
            code, wall_s = legit_call(work, "legit", uac)
            out, _ = flooder.communicate(timeout=args.seconds + 60)
            sent = json.loads(out.strip().splitlines()[-1])
            time.sleep(1.0)
            after = dropped(vos.stats())
            alive = vos.alive()
            cdrs = cdr_setup(vos)
        finally:
            if flooder is not None and flooder.poll() is None:
                h.stop_pid(flooder)
            if uas is not None:
                uas.stop()
            vos.stop()

    rate = sent["sent"] / sent["elapsed_s"] if sent["elapsed_s"] else 0.0
    guard = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    print(f"SS_SIGNAL_RATE_LIMIT: {json.loads(limit).get('value', '?')} per "
          f"SS_SIGNAL_RATE_WINDOW (default 2 s)")  # fmt: skip
    print(f"flood: {sent['sent']} INVITEs from {FLOOD_IP} in {sent['elapsed_s']:.2f} s = "
          f"{rate:,.0f}/s (target {args.rate:,}/s), send errors {sent['errors']}, "
          f"answers received {sent['answers']}")  # fmt: skip
    received = guard.get("sip_received", 0)
    print(f"vos3k received {received} datagrams meanwhile (the rest lost in the kernel's "
          f"socket buffer); guard dropped {guard.get('signalling_dropped', 0)} of them "
          f"unparsed ({guard.get('signalling_dropped_rate_limit', 0)} rate_limit), "
          f"{received - guard.get('signalling_dropped', 0)} parsed")  # fmt: skip
    print(f"vos3k alive after the flood: {'yes' if alive else 'NO'}")
    quiet = cdrs[0] if cdrs else None
    flooded = cdrs[1] if len(cdrs) > 1 else None
    print(f"call without flood: {'completed' if quiet_code == 0 else f'FAILED ({quiet_code})'}"
          + (f", setup {quiet['setup_ms']} ms" if quiet else ""))  # fmt: skip
    print(f"call during flood: {'completed' if code == 0 else f'FAILED ({code})'}"
          + (f", setup {flooded['setup_ms']} ms (end reason {flooded['reason']}, "
             f"SIP {flooded['code']}, held {flooded['hold_ms']} ms)" if flooded else "")
          + f", SIPp wall time {wall_s:.2f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
