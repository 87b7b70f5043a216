"""RTP relay load test: the most concurrent G.711 calls a relay carries at < 1 % loss.

A call is two 50 pps streams of 172-byte RTP packets (20 ms PCMU), one each way, sent from
two loopback sockets (caller side A, callee side B) through the relay under test:
vos3k's relay (bench/rtp_vos3k_relay.py, its own process) or rtpengine in userspace
(--table=-1, driven over the ng protocol). The call count doubles until loss reaches 1 %,
then is bisected. Besides the count it prints the relay's CPU time per relayed packet
(from /proc), which does not depend on the load generator keeping up.

Usage: rtp_load.py vos3k|rtpengine [--seconds S] [--max-calls N]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOOPBACK = "127.0.0.1"
PPS = 50
SLOTS = 4  # each 20 ms is sent as 4 slices of 5 ms, to avoid one burst per period
PAYLOAD = b"\xff" * 160
HEADER = struct.Struct("!BBHII")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (all threads) from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def endpoint() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sock.bind((LOOPBACK, 0))
    sock.setblocking(False)
    return sock


# The generator must outrun the relay it measures, so it batches its system calls with
# sendmmsg/recvmmsg through ctypes (Linux); the relays themselves are untouched by this.
LIBC = ctypes.CDLL(None, use_errno=True)
MSG_DONTWAIT = 0x40
BATCH = 256


class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class MsgHdr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
        ("iov", ctypes.POINTER(IoVec)), ("iovlen", ctypes.c_size_t),
        ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t), ("flags", ctypes.c_int),
    ]  # fmt: skip


class MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", MsgHdr), ("len", ctypes.c_uint)]


class Batch:
    """`count` datagrams of `size` bytes in one buffer, addressed to `ports` (or received)."""

    def __init__(self, count: int, size: int, ports=None):
        self.count = count
        self.buffer = (ctypes.c_char * (count * size))()
        self.view = memoryview(self.buffer).cast("B")
        self.iov = (IoVec * count)()
        self.msgs = (MMsgHdr * count)()
        base = ctypes.addressof(self.buffer)
        if ports is not None:
            self.names = (ctypes.c_char * (16 * count))()
            for i, port in enumerate(ports):
                name = struct.pack("=HH4s8x", socket.AF_INET, socket.htons(port),
                                   socket.inet_aton(LOOPBACK))  # fmt: skip
                ctypes.memmove(ctypes.addressof(self.names) + 16 * i, name, 16)
        for i in range(count):
            self.iov[i].base = base + i * size
            self.iov[i].len = size
            hdr = self.msgs[i].hdr
            hdr.iov = ctypes.pointer(self.iov[i])
            hdr.iovlen = 1
            if ports is not None:
                hdr.name = ctypes.addressof(self.names) + 16 * i
                hdr.namelen = 16

    def send(self, fd: int, first: int, last: int) -> tuple[int, int]:
        """sendmmsg the messages first..last-1; returns (sent, failed)."""
        sent = failed = 0
        while first < last:
            n = LIBC.sendmmsg(fd, ctypes.byref(self.msgs, first * ctypes.sizeof(MMsgHdr)),
                              min(last - first, 1024), MSG_DONTWAIT)  # fmt: skip
            if n <= 0:
                failed += 1  # the one at `first` could not go (a full buffer): skip it
                first += 1
                continue
            sent += n
            first += n
        return sent, failed

    def receive(self, fd: int) -> int:
        """recvmmsg until the socket is empty; returns how many datagrams arrived."""
        got = 0
        while True:
            n = LIBC.recvmmsg(fd, self.msgs, self.count, MSG_DONTWAIT, None)
            if n <= 0:
                return got
            got += n


def generate(a: socket.socket, b: socket.socket, pairs, seconds: float) -> dict:
    """Send 50 pps each way per call for `seconds`; count what comes back."""
    n = len(pairs)
    size = HEADER.size + len(PAYLOAD)
    out_a = Batch(n, size, [pa for pa, _ in pairs])
    out_b = Batch(n, size, [pb for _, pb in pairs])
    for i in range(n):
        out_a.view[i * size + HEADER.size : (i + 1) * size] = PAYLOAD
        out_b.view[i * size + HEADER.size : (i + 1) * size] = PAYLOAD
    inbox = Batch(BATCH, 2048)
    fd_a, fd_b = a.fileno(), b.fileno()
    bounds = [(k * n // SLOTS, (k + 1) * n // SLOTS) for k in range(SLOTS)]
    sent = got_at_a = got_at_b = errors = late = 0
    slot_s = 1 / PPS / SLOTS
    periods = int(seconds * PPS)
    pack_into = HEADER.pack_into
    view_a, view_b = out_a.view, out_b.view
    start = time.monotonic()
    for period in range(periods):
        seq = period & 0xFFFF
        ts = (period * 160) & 0xFFFFFFFF
        for k, (first, last) in enumerate(bounds):
            due = start + (period * SLOTS + k) * slot_s
            while True:
                wait = due - time.monotonic()
                if wait <= 0:
                    break
                readable, _, _ = select.select([a, b], [], [], wait)
                if a in readable:
                    got_at_a += inbox.receive(fd_a)
                if b in readable:
                    got_at_b += inbox.receive(fd_b)
            if wait < -slot_s:
                late += 1
            for i in range(first, last):
                pack_into(view_a, i * size, 0x80, 0, seq, ts, i)
                pack_into(view_b, i * size, 0x80, 0, seq, ts, 0x80000000 | i)
            for batch, fd in ((out_a, fd_a), (out_b, fd_b)):
                ok, failed = batch.send(fd, first, last)
                sent += ok
                errors += failed
    elapsed = time.monotonic() - start
    settle = time.monotonic() + 0.5
    while time.monotonic() < settle:
        select.select([a, b], [], [], 0.05)
        got_at_a += inbox.receive(fd_a)
        got_at_b += inbox.receive(fd_b)
    received = got_at_a + got_at_b
    expected = 2 * n * periods
    return {
        "calls": n,
        "sent": sent,
        "received": received,
        "loss": 1 - received / expected if expected else 0.0,
        "offered_pps": round(sent / elapsed),
        "target_pps": 2 * n * PPS,
        "generator_late_slots": late,
        "send_errors": errors,
    }


class Vos3kRelay:
    name = "vos3k"

    def __init__(self):
        self.proc = None

    def setup(self, n: int, a_addr, b_addr) -> list[tuple[int, int]]:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "rtp_vos3k_relay.py"), str(n),
             "{}:{}".format(*a_addr), "{}:{}".format(*b_addr), "30000-49999"],
            stdout=subprocess.PIPE, text=True, cwd=HERE.parent,
        )  # fmt: skip
        line = self.proc.stdout.readline()
        pairs = json.loads(line)
        if isinstance(pairs, dict):
            raise RuntimeError(pairs["error"])
        return [tuple(p) for p in pairs]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def teardown(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        pass


def bencode(value) -> bytes:
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    return b"d" + b"".join(bencode(k) + bencode(v) for k, v in sorted(value.items())) + b"e"


def bdecode(data: bytes, i: int = 0):
    head = data[i : i + 1]
    if head == b"i":
        end = data.index(b"e", i)
        return int(data[i + 1 : end]), end + 1
    if head in (b"l", b"d"):
        items, i = [], i + 1
        while data[i : i + 1] != b"e":
            item, i = bdecode(data, i)
            items.append(item)
        if head == b"l":
            return items, i + 1
        return {items[k].decode(): items[k + 1] for k in range(0, len(items), 2)}, i + 1
    colon = data.index(b":", i)
    length = int(data[i:colon])
    return data[colon + 1 : colon + 1 + length], colon + 1 + length


def sdp(port: int) -> str:
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    )


class RtpEngine:
    """rtpengine userspace (--table=-1), one worker thread per core of this machine."""

    name = "rtpengine"

    def __init__(self):
        self.ng = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.ng.bind((LOOPBACK, 0))
        self.ng.settimeout(5)
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind((LOOPBACK, 0))
        self.ng_addr = probe.getsockname()
        probe.close()
        self.threads = os.cpu_count() or 1
        self.proc = subprocess.Popen(
            ["rtpengine", "--config-file=none", "--foreground", "--log-stderr",
             "--log-level=3", "--table=-1", f"--interface={LOOPBACK}",
             f"--listen-ng={LOOPBACK}:{self.ng_addr[1]}", "--port-min=50000", "--delete-delay=0",
             "--port-max=65000", f"--num-threads={self.threads}", "--timeout=600"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.cookie = 0
        self.calls: list[str] = []
        for _ in range(50):
            try:
                self.command({"command": "ping"}, timeout=0.2)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("rtpengine does not answer on the ng port")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def command(self, message: dict, timeout: float = 5.0) -> dict:
        self.cookie += 1
        cookie = b"%d_%d" % (os.getpid(), self.cookie)
        self.ng.settimeout(timeout)
        self.ng.sendto(cookie + b" " + bencode(message), self.ng_addr)
        while True:
            reply = self.ng.recv(65535)
            got, _, body = reply.partition(b" ")
            if got == cookie:
                answer, _ = bdecode(body)
                if answer.get("result") not in (b"ok", b"pong"):
                    raise RuntimeError(f"rtpengine: {answer}")
                return answer

    def setup(self, n: int, a_addr, b_addr) -> list[tuple[int, int]]:
        pairs = []
        for i in range(n):
            call_id = f"bench-{i}-{time.monotonic_ns()}"
            offer = self.command(
                {"command": "offer", "call-id": call_id, "from-tag": "a", "sdp": sdp(a_addr[1])}
            )
            answer = self.command(
                {"command": "answer", "call-id": call_id, "from-tag": "a", "to-tag": "b",
                 "sdp": sdp(b_addr[1])}
            )  # fmt: skip
            b_sends_to = int(re.search(rb"m=audio (\d+)", offer["sdp"]).group(1))
            a_sends_to = int(re.search(rb"m=audio (\d+)", answer["sdp"]).group(1))
            pairs.append((a_sends_to, b_sends_to))
            self.calls.append(call_id)
        return pairs

    def teardown(self) -> None:
        for call_id in self.calls:
            self.command({"command": "delete", "call-id": call_id, "from-tag": "a"})
        self.calls = []

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measure(relay, n: int, seconds: float) -> dict:
    a, b = endpoint(), endpoint()
    try:
        pairs = relay.setup(n, a.getsockname(), b.getsockname())
        cpu_before, wall_before = cpu_seconds(relay.pid), time.monotonic()
        result = generate(a, b, pairs, seconds)
        cpu = cpu_seconds(relay.pid) - cpu_before
        wall = time.monotonic() - wall_before
        result["relay_cpu_pct"] = round(100 * cpu / wall)
        result["relay_us_per_packet"] = (
            round(1e6 * cpu / result["received"], 2) if result["received"] else None
        )
        return result
    finally:
        relay.teardown()
        a.close()
        b.close()


def behind(result: dict) -> bool:
    """The generator could not offer the target rate: it, not the relay, is the limit."""
    return result["offered_pps"] < 0.97 * result["target_pps"]


def search(relay, seconds: float, max_calls: int, start: int) -> tuple[int, list[dict]]:
    """Double until >= 1 % loss (or the generator falls behind), then bisect twice."""
    runs: list[dict] = []

    def ok(n: int) -> bool:
        result = measure(relay, n, seconds)
        result["ok"] = result["loss"] < 0.01
        runs.append(result)
        print(
            "  {name}: {calls} calls ({target_pps} pps offered {offered_pps}): "
            "loss {loss:.2%}, relay CPU {relay_cpu_pct}%, {relay_us_per_packet} us/packet"
            "{late}".format(
                name=relay.name,
                late="  [generator fell behind]" if behind(result) else "",
                **result,
            ),
            flush=True,
        )
        return result["ok"]

    good, bad, n = 0, None, start
    while n <= max_calls:
        if ok(n):
            good = n
            if behind(runs[-1]):
                break  # the load generator, not the relay, is the limit now
            n *= 2
        else:
            bad = n
            break
    if bad is not None:
        for _ in range(2):
            mid = (good + bad) // 2
            if mid in (good, bad):
                break
            if ok(mid):
                good = mid
            else:
                bad = mid
    return good, runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("relay", choices=["vos3k", "rtpengine"])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--max-calls", type=int, default=4000)
    parser.add_argument("--start", type=int, default=100)
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args()
    if args.relay == "rtpengine" and shutil.which("rtpengine") is None:
        print("rtpengine: not installed (apt-get install -y rtpengine-daemon)")
        return 2
    relay = Vos3kRelay() if args.relay == "vos3k" else RtpEngine()
    try:
        best, runs = search(relay, args.seconds, args.max_calls, args.start)
    finally:
        relay.close()
    bound = any(behind(r) for r in runs if r["ok"])
    costs = [r["relay_us_per_packet"] for r in runs if r["ok"] and r["relay_us_per_packet"]]
    summary = {
        "relay": args.relay,
        "max_calls": best,
        "max_streams": 2 * best,
        "max_pps": 2 * best * PPS,
        "generator_bound": bound,
        "us_per_packet": min(costs) if costs else None,
        "runs": runs,
    }
    print(
        f"{args.relay}: {best} calls = {2 * best} streams = {2 * best * PPS} pps at < 1 % loss"
        + (" (load generator was the limit: a lower bound)" if bound else "")
        + (f"; relay CPU {summary['us_per_packet']} us/packet" if costs else "")
    )
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
