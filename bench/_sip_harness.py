"""Shared plumbing of the SIP benchmarks: a loopback vos3k, Kamailio, SIPp runs, CPU and RSS.

Used by bench/sip_cps.py and bench/concurrency.py (run_all.py skips files starting with
"_").  Everything binds 127.0.0.0/8 only, and every process started here is stopped by
its own PID (SIGTERM, then SIGKILL), never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
VBIN = Path(sys.executable).parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
# The vos3k source tree the SUT runs from: this checkout, or VOS3K_SRC (e.g. an exported
# commit, to bench a known state while the working tree is being edited).
SRC = Path(os.environ.get("VOS3K_SRC") or ROOT).resolve()

# Addresses (loopback only): customer gateway (SIPp UAC), vendor gateway (SIPp UAS), SUTs.
UAC_IP = "127.0.0.10"
UAS_IP = "127.0.0.21"
UAS_PORT = 5080
VOS3K_SIP = ("127.0.0.1", 35060)
KAMAILIO_SIP = ("127.0.0.1", 35070)
SSH_PORT = 32222
CALLEE = "1000001"  # routing prefix 100 -> vendor gateway
CALLER = "7100001"

UAC_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="bench UAC: INVITE, 200, ACK, hold -d, BYE">
  <send retrans="500"><![CDATA[

INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:%(caller)s@[local_ip]:[local_port]>;tag=[pid]b[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:%(caller)s@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=bench 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 8
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000

]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true" timeout="%(answer_ms)d"/>
  <send><![CDATA[

ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
[routes]
From: <sip:%(caller)s@[local_ip]:[local_port]>;tag=[pid]b[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <pause/>
  <send retrans="500"><![CDATA[

BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
[routes]
From: <sip:%(caller)s@[local_ip]:[local_port]>;tag=[pid]b[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" timeout="%(bye_ms)d"/>
</scenario>
"""

UAS_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="bench UAS: 180, 200 with SDP, wait for ACK and BYE">
  <recv request="INVITE" rrs="true"/>
  <send><![CDATA[

SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]v[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]v[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=vendor 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000

]]></send>
  <recv request="ACK" timeout="%(ack_ms)d"/>
  <recv request="BYE" timeout="%(bye_ms)d"/>
  <send><![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""


def log(text: str) -> None:
    print(text, flush=True)


def machine() -> str:
    """One short description of the box the figures come from."""
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores {cpu}, {platform.system()} {platform.release()}"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def write_result(bench: str, rows: list[dict], figures: list[dict]) -> None:
    """bench/results/BENCH.csv (raw rows) and BENCH.json (figures for report.py)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    if rows:
        keys = list(dict.fromkeys(k for r in rows for k in r))
        lines = [",".join(keys)] + [",".join(str(r.get(k, "")) for k in keys) for r in rows]
        (RESULTS / f"{bench}.csv").write_text("\n".join(lines) + "\n")
    doc = {"bench": bench, "date": now_iso(), "machine": machine(), "figures": figures}
    (RESULTS / f"{bench}.json").write_text(json.dumps(doc, indent=1) + "\n")


def figure(metric: str, vos3k, anchor="", unit: str = "", target: str = "", note: str = "",
           ratio=None) -> dict:  # fmt: skip
    """One row of LATEST.md; `anchor` is the comparison figure or why there is none."""
    return {"metric": metric, "vos3k": vos3k, "anchor": anchor, "unit": unit,
            "target": target, "note": note, "ratio": ratio}  # fmt: skip


# ---------------------------------------------------------------- /proc
def proc_cpu_ticks(pid: int) -> int:
    """utime+stime of one process (all its threads), in clock ticks; 0 once gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def children_of(pid: int) -> list[int]:
    """Direct children of `pid` (Kamailio's workers are forked by its main process)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of `pid` and its direct children (user + system)."""
    return sum(proc_cpu_ticks(p) for p in [pid, *children_of(pid)]) / CLK_TCK


def rss_mib(pid: int) -> float:
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except OSError:
        return 0.0
    return pages * PAGE / 2**20


def tree_rss_mib(pid: int) -> float:
    """Resident set of the tree; Kamailio's shared memory pages count once per process."""
    return sum(rss_mib(p) for p in [pid, *children_of(pid)])


def stop_pid(proc: subprocess.Popen | None, grace_s: float = 5.0) -> int | None:
    """SIGTERM the one process we started, wait, then SIGKILL it."""
    if proc is None:
        return None
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode


def raise_nofile(limit: int) -> int:
    """Raise RLIMIT_NOFILE for us and what we start (root may raise the hard limit too)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = limit
    if os.geteuid() != 0:
        want = min(limit, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def udp_free(ip: str, port: int) -> bool:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((ip, port))
    except OSError:
        return False
    finally:
        sock.close()
    return True


def tcp_free(ip: str, port: int) -> bool:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no conflict
    try:
        sock.bind((ip, port))
    except OSError:
        return False
    finally:
        sock.close()
    return True


# ---------------------------------------------------------------- vos3k
class Vos3k:
    """`twistd -n vos3k` on loopback ports with its own data dir, provisioned over SSH."""

    def __init__(self, work: Path, rtp_ports: str = "20000-59999", nofile: int = 65536,
                 sip: tuple[str, int] | None = None, ssh_port: int | None = None,
                 uac_ip: str | None = None, uas_ip: str | None = None):  # fmt: skip
        # defaults looked up now, not at import: a caller may rebind the module's addresses
        self.work = work
        self.sip = sip or VOS3K_SIP
        self.ssh_port = ssh_port or SSH_PORT
        self.uac_ip, self.uas_ip = uac_ip or UAC_IP, uas_ip or UAS_IP
        self.data = work / "data"
        self.key = work / "admin_key"
        self.rtp_ports = rtp_ports
        self.nofile = nofile
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _run(self, *args: str, timeout: float = 120) -> None:
        env = {**os.environ, "PYTHONPATH": str(SRC)} if SRC != ROOT else None
        subprocess.run(args, check=True, timeout=timeout, cwd=SRC, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)  # fmt: skip

    def start(self) -> None:
        ip, port = self.sip
        if not udp_free(ip, port) or not tcp_free("127.0.0.1", self.ssh_port):
            raise RuntimeError(f"{ip}:{port} (UDP) or 127.0.0.1:{self.ssh_port} (TCP) is busy")
        self._run(str(VBIN / "vos3k"), "init", "--data-dir", str(self.data))
        self._run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key))
        self._run(str(VBIN / "vos3k"), "user", "add", "admin", "--role", "admin",
                  "--key", f"{self.key}.pub", "--data-dir", str(self.data))  # fmt: skip
        nofile = self.nofile

        def limits() -> None:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        cmd = [str(VBIN / "twistd"), "-n", "--pidfile=", f"--logfile={self.work / 'vos3k.log'}",
               "vos3k", "--config", str(SRC / "etc" / "vos3k.conf"),
               "--data-dir", str(self.data), "--sip-listen", f"{ip}:{port}",
               "--ssh-listen", f"127.0.0.1:{self.ssh_port}", "--h323-listen", "off",
               "--ras-listen", "off", "--rtp-ports", self.rtp_ports,
               "--media-ip", "127.0.0.1"]  # fmt: skip
        out = open(self.work / "vos3k.stdout", "wb")
        env = {**os.environ, "PYTHONPATH": str(SRC)} if SRC != ROOT else None
        self.proc = subprocess.Popen(cmd, cwd=SRC, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=limits, env=env)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"vos3k exited at start: {self.logtail()}")
            if not tcp_free("127.0.0.1", self.ssh_port) and self.shell("stats", check=False):
                return
            time.sleep(0.5)
        raise RuntimeError("vos3k's SSH shell did not answer within 60 s")

    def logtail(self, n: int = 5) -> str:
        text = ""
        for name in ("vos3k.log", "vos3k.stdout"):
            with contextlib.suppress(OSError):
                text += " ".join((self.work / name).read_text(errors="replace").splitlines()[-n:])
        return text[-800:]

    def shell(self, command: str, check: bool = True) -> str | None:
        """One admin shell command over SSH; its stdout, or None when it failed."""
        args = ["ssh", "-F", "/dev/null", "-n", "-p", str(self.ssh_port), "-i", str(self.key),
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=8", "-o", "IdentitiesOnly=yes", "admin@127.0.0.1",
                command]  # fmt: skip
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=40)
        except subprocess.TimeoutExpired:
            done = None
        if done is None or done.returncode != 0:
            if check:
                why = "timeout" if done is None else done.stderr.strip()[:300]
                raise RuntimeError(f"shell command {command!r} failed: {why}")
            return None
        return done.stdout

    def provision(self, lines: int, media: str) -> None:
        """Routing + rating + CDR on: rate table, prepaid account, customer and vendor gateways."""
        for name, value in (("SS_CDR_RECORD_TO_FILE", "1"), ("SS_MEDIAPROXYMODE", media),
                            ("SS_MAX_CONCURRENT_CALLS", "0")):  # fmt: skip
            self.shell(f"param set {name} {value}")
        self.shell("rate add T1 1 fee=0.06 period=60 first_period=60 area=bench")
        self.shell("account add ACME type=prepaid balance=100000000 rate_table=T1")
        self.shell(f"gateway add mapping CUST ip={self.uac_ip} account=ACME lines={lines}")
        self.shell(f"gateway add routing VEND ip={self.uas_ip} port={UAS_PORT} prefix=100 "
                   f"priority=1 lines={lines}")  # fmt: skip

    def stats(self) -> dict:
        out = self.shell("stats --json", check=False)
        try:
            return json.loads(out) if out else {}
        except ValueError:
            return {}

    def cdr_files_lines(self) -> int:
        return sum(len(p.read_bytes().splitlines()) for p in (self.data / "cdr").glob("*.txt"))

    def stop(self) -> int | None:
        return stop_pid(self.proc, grace_s=15)


# ---------------------------------------------------------------- Kamailio
def kamailio_binary() -> str | None:
    found = shutil.which("kamailio") or (
        "/usr/sbin/kamailio" if Path("/usr/sbin/kamailio").exists() else None
    )
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        log("kamailio not installed: apt-get install -y kamailio")
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(["apt-get", "install", "-y", "-qq", "kamailio"], timeout=600,
                           capture_output=True,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
        found = shutil.which("kamailio") or (
            "/usr/sbin/kamailio" if Path("/usr/sbin/kamailio").exists() else None
        )
    return found


def kamailio_version(binary: str) -> str:
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10).stdout
        return out.split()[2] if out.startswith("version:") else out.split("\n", 1)[0]
    return "?"


class Kamailio:
    """The anchor: Kamailio stateful relay (bench/kamailio/kamailio.cfg), one UDP worker."""

    def __init__(self, work: Path, binary: str, sip: tuple[str, int] = KAMAILIO_SIP,
                 uas_ip: str = UAS_IP):  # fmt: skip
        self.work = work
        self.binary = binary
        self.sip, self.uas_ip = sip, uas_ip
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        ip, port = self.sip
        if not udp_free(ip, port):
            raise RuntimeError(f"UDP {ip}:{port} is busy")
        cmd = [self.binary, "-f", str(ROOT / "bench" / "kamailio" / "kamailio.cfg"),
               "-DD", "-E", "-n", "1", "-m", "256", "-M", "32", "-Y", str(self.work),
               "-P", str(self.work / "kamailio.pid"),
               "-A", f"LISTEN=udp:{ip}:{port}",
               "-A", f'UAS="sip:{self.uas_ip}:{UAS_PORT}"']  # fmt: skip
        out = open(self.work / "kamailio.log", "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.work / "kamailio.log").read_text(errors="replace")[-500:]
                raise RuntimeError(f"kamailio exited at start: {tail}")
            if not udp_free(ip, port):
                time.sleep(0.5)
                return
            time.sleep(0.2)
        raise RuntimeError("kamailio did not bind within 15 s")

    def stop(self) -> int | None:
        return stop_pid(self.proc, grace_s=10)


# ---------------------------------------------------------------- SIPp
def sipp_stats(path: Path) -> dict[str, float]:
    """The last row of a SIPp -trace_stat file, by column name."""
    try:
        rows = [line.rstrip("\n").split(";") for line in path.read_text().splitlines() if line]
    except OSError:
        return {}
    rows = [r for r in rows if len(r) >= len(rows[0]) - 1]  # drop a half-written last row
    if len(rows) < 2:
        return {}
    out = {}
    for key, value in zip(rows[0], rows[-1], strict=False):
        with contextlib.suppress(ValueError):
            out[key] = float(value)
    return out


def write_scenarios(work: Path, hold_ms: int) -> tuple[Path, Path]:
    uac, uas = work / "uac.xml", work / "uas.xml"
    uac.write_text(UAC_XML % {"caller": CALLER, "answer_ms": 8000, "bye_ms": 8000})
    uas.write_text(UAS_XML % {"ack_ms": 10000, "bye_ms": hold_ms + 20000})
    return uac, uas


class SippUas:
    """Vendor gateway UAS on UAS_IP:UAS_PORT for a whole ramp; per-step figures are deltas
    of its cumulative -trace_stat counters (one long-lived UAS still knows the calls a slow
    SUT retransmits a BYE for, where a fresh one would count them as failed calls)."""

    def __init__(self, work: Path, name: str, scenario: Path, ip: str = UAS_IP):
        self.csv = work / f"{name}.csv"
        for _ in range(50):
            if udp_free(ip, UAS_PORT):
                break
            time.sleep(0.1)
        cmd = ["sipp", "-sf", str(scenario), "-i", ip, "-p", str(UAS_PORT), "-mi", ip,
               "-nostdin", "-buff_size", "8388608", "-trace_stat", "-stf", str(self.csv),
               "-fd", "1", "-trace_err", "-error_file", str(work / f"{name}.err"),
               "-max_socket", "1000"]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(work / f"{name}.out", "wb"),
                                     start_new_session=True)  # fmt: skip
        for _ in range(50):
            if not udp_free(ip, UAS_PORT) or self.proc.poll() is not None:
                break
            time.sleep(0.1)
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"SIPp UAS did not start: {(work / f'{name}.out').read_text()[-300:]}"
            )

    def counters(self, settle_s: float = 10.0) -> dict[str, float]:
        """Cumulative counters once no call is open (bounded wait) and a fresh row is out."""
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline and sipp_stats(self.csv).get("CurrentCall", 0) > 0:
            time.sleep(0.25)
        time.sleep(1.2)  # -fd 1: the next row reflects everything up to now
        return sipp_stats(self.csv)

    def stop(self) -> None:
        stop_pid(self.proc, grace_s=3)


def sipp_uac(work: Path, name: str, scenario: Path, target: tuple[str, int], rate: float,
             calls: int, hold_ms: int, timeout_s: float, limit: int | None = None,
             rate_increase: tuple[int, int] | None = None,
             ip: str = UAC_IP) -> subprocess.Popen:  # fmt: skip
    """Customer gateway UAC from `ip` placing `calls` calls at `rate` CPS (background)."""
    cmd = ["sipp", "-sf", str(scenario), f"{target[0]}:{target[1]}", "-i", ip, "-p", "5070",
           "-mi", ip, "-s", CALLEE, "-nostdin", "-buff_size", "8388608",
           "-r", f"{rate:g}", "-m", str(calls), "-d", str(hold_ms), "-trace_stat",
           "-stf", str(work / f"{name}.csv"), "-fd", "1", "-trace_err",
           "-error_file", str(work / f"{name}.err"), "-timeout", f"{int(timeout_s)}s",
           "-timeout_error", "-max_socket", "1000"]  # fmt: skip
    if limit is not None:
        cmd += ["-l", str(limit)]
    if rate_increase is not None:
        cmd += ["-rate_increase", str(rate_increase[0]), "-rate_max", str(rate_increase[1]),
                "-rate_interval", "1"]  # fmt: skip
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(work / f"{name}.out", "wb"),
                            start_new_session=True)  # fmt: skip


def wait_or_stop(proc: subprocess.Popen, timeout_s: float) -> int | None:
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        return stop_pid(proc, grace_s=3)
