"""Two vos3k nodes behind Kamailio's dispatcher on loopback, with SIPp calls through them.

The run docs/scaling.md records.  Run as root or any user from the repo root:

    .venv/bin/python docs/kamailio_demo.py [CALLS] [RATE]

Addresses (127.0.7.0/24): Kamailio 127.0.7.2:5060, SIPp caller 127.0.7.3, SIPp vendor
(callee, answers) 127.0.7.4:5060, vos3k nodes 127.0.7.5:5060 and 127.0.7.6:5060
(etc/dispatcher.list).  Each node gets its own data dir under a temporary directory,
provisioned the same way: rate T1 prefix 9, prepaid account ACME, mapping gateway KAM
= Kamailio's address (vos3k sees the proxy as the source), routing gateway V = SIPp.
Prints where each call went and the CDRs each node wrote; stops every process it
started, by PID.
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vos3k.params import Actor, LiveParams  # noqa: E402
from vos3k.store.db import open_store  # noqa: E402
from vos3k.store.models import Account, Gateway, Rate  # noqa: E402

KAMAILIO, CALLER, VENDOR = "127.0.7.2", "127.0.7.3", "127.0.7.4"
NODES = ("127.0.7.5", "127.0.7.6")
SETUP = Actor("demo", "kamailio_demo")
BIN = REPO / ".venv" / "bin"


def provision(data_dir: Path) -> None:
    subprocess.run([BIN / "vos3k", "init", "--data-dir", str(data_dir)], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    store = open_store(data_dir / "vos3k.db", create=False)
    try:
        store.rates.put(Rate("T1", "9", Decimal("0.06"), 60, 60, "demo"), SETUP)
        store.accounts.add(Account("ACME", "prepaid", Decimal("1000"), rate_table="T1"), SETUP)
        store.gateways.add(Gateway("KAM", "mapping", KAMAILIO, account="ACME"), SETUP)
        store.gateways.add(
            Gateway("V", "routing", VENDOR, port=5060, prefixes=("9",), lines=1000), SETUP
        )
        LiveParams(store.params).set("SS_CDR_WRITE_INTERVAL", "200", SETUP)
    finally:
        store.close()


def start_node(ip: str, index: int, data_dir: Path, logs: Path) -> subprocess.Popen:
    log = logs / f"vos3k-{ip}.log"
    proc = subprocess.Popen(
        [BIN / "twistd", "-n", "--pidfile=", "--logfile", str(log), "vos3k",
         "--data-dir", str(data_dir), "--sip-listen", f"{ip}:5060",
         "--h323-listen", f"{ip}:1720", "--ras-listen", f"{ip}:1719",
         "--ssh-listen", f"{ip}:2222", "--media-ip", ip,
         "--rtp-ports", f"{33000 + index * 200}-{33199 + index * 200}"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not (log.exists() and "vos3k started" in log.read_text()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"vos3k on {ip} did not start; see {log}")
        time.sleep(0.1)
    return proc


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cdrs(data_dir: Path) -> list[tuple]:
    db = sqlite3.connect(f"file:{data_dir / 'vos3k.db'}?mode=ro", uri=True)
    try:
        return db.execute(
            "SELECT end_reason, COUNT(*), SUM(hold_ms > 0) FROM cdrs GROUP BY end_reason"
        ).fetchall()
    finally:
        db.close()


def main() -> int:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    rate = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    for tool in ("kamailio", "sipp"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    work = Path(tempfile.mkdtemp(prefix="vos3k-kamailio-"))
    procs: list[subprocess.Popen] = []
    try:
        dirs = []
        for index, ip in enumerate(NODES):
            data_dir = work / f"node{index}"
            provision(data_dir)
            dirs.append(data_dir)
            procs.append(start_node(ip, index, data_dir, work))
        kamailio = subprocess.Popen(
            ["kamailio", "-DD", "-E", "-f", str(REPO / "etc" / "kamailio-dispatcher.cfg"),
             "-A", f'DISPATCHER_LIST="{REPO / "etc" / "dispatcher.list"}"',
             "-P", str(work / "kamailio.pid"), "-Y", str(work)],
            stdout=subprocess.DEVNULL, stderr=(work / "kamailio.log").open("w"),
        )  # fmt: skip
        procs.append(kamailio)
        uas = subprocess.Popen(
            ["sipp", "-sn", "uas", "-i", VENDOR, "-p", "5060", "-nostdin", "-trace_stat",
             "-stf", str(work / "uas.csv")],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(uas)
        time.sleep(2)  # Kamailio's first OPTIONS round marks both nodes up
        if kamailio.poll() is not None:
            raise SystemExit(f"kamailio exited; see {work / 'kamailio.log'}")
        started = time.monotonic()
        uac = subprocess.run(
            ["sipp", "-sn", "uac", "-i", CALLER, "-p", "5060", "-s", "9100",
             f"{KAMAILIO}:5060", "-m", str(calls), "-r", str(rate), "-d", "1000",
             "-timeout", "60", "-trace_stat", "-stf", str(work / "uac.csv"),
             "-trace_err", "-error_file", str(work / "uac_errors.log")],
            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        time.sleep(1.5)  # the last CDR batches commit
        print(f"work dir: {work}")
        print(f"sipp uac: exit {uac.returncode} after {elapsed:.1f} s ({calls} calls at {rate}/s)")
        stats = (work / "uac.csv").read_text().splitlines() if (work / "uac.csv").exists() else []
        if len(stats) >= 2:
            head, last = stats[0].split(";"), stats[-1].split(";")
            row = dict(zip(head, last, strict=False))
            print("sipp uac: successful {} failed {} retransmissions {}".format(
                row.get("SuccessfulCall(C)"), row.get("FailedCall(C)"),
                row.get("Retransmissions(C)")))  # fmt: skip
        for ip, data_dir in zip(NODES, dirs, strict=True):
            print(f"node {ip}: CDRs (end_reason, count, answered) = {cdrs(data_dir)}")
        return 0 if uac.returncode == 0 else 1
    finally:
        for proc in reversed(procs):
            stop(proc)


if __name__ == "__main__":
    raise SystemExit(main())
