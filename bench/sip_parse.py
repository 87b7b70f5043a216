"""Benchmark: SIP parse/serialise, validation and transaction-layer cost per message.

Run: ``.venv/bin/python bench/sip_parse.py [--number N]``.  Prints figures only.
The stdlib baseline is ``email.parser.BytesHeaderParser`` on the same bytes (it
splits headers but understands nothing of SIP), so the gap is what SIP costs.

Every timed message is a different one (its own branch, tags, Call-ID and SDP
origin, as in a real call), so the parsers' memo tables of recent values only help
where a real call would repeat a value (the Request-URI, the To header).
"""

from __future__ import annotations

import argparse
import sys
import timeit
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from time import perf_counter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vos3k.sip.message import (
    build_response,
    parse,
    serialise,
    validate_request,
)
from vos3k.sip.sdp import parse_sdp, rewrite_sdp
from vos3k.sip.transaction import (
    Address,
    RequestReceived,
    ResponseSubmitted,
    TransactionLayer,
)

SDP = (
    b"v=0\r\n"
    b"o=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.10\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0 8 18 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:18 G729/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\n"
    b"a=fmtp:101 0-16\r\n"
    b"a=ptime:20\r\n"
    b"a=sendrecv\r\n"
)


def sdp(n: int = 0) -> bytes:
    return SDP.replace(b"2890844526 2890844526", f"2890844526 {n}".encode())


def invite(branch: str = "z9hG4bK776asdhds", n: int = 0) -> bytes:
    body = sdp(n)
    head = (
        "INVITE sip:+15551234567@gw.example.com:5060;user=phone SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        "To: <sip:+15551234567@gw.example.com;user=phone>\r\n"
        f'From: "Alice" <sip:+15557654321@192.0.2.10>;tag=1928301774-{n}\r\n'
        f"Call-ID: a84b4c76e66710-{n}@192.0.2.10\r\n"
        "CSeq: 314159 INVITE\r\n"
        "Contact: <sip:+15557654321@192.0.2.10:5060>\r\n"
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, PRACK, INFO\r\n"
        "Supported: 100rel, timer\r\n"
        "Session-Expires: 1800\r\n"
        "User-Agent: Bench/1.0\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def per_call_us(fn, number: int) -> float:
    best = min(timeit.repeat(fn, number=number, repeat=5))
    return best / number * 1e6


def per_item_us(fn, passes: list[list]) -> float:
    """Best pass of ``fn`` over a list of inputs, each input used once."""
    best = float("inf")
    for items in passes:
        start = perf_counter()
        for item in items:
            fn(item)
        best = min(best, perf_counter() - start)
    return best / len(passes[0]) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--number", type=int, default=5000, help="calls per timing run")
    n = ap.parse_args().number
    data = invite()
    msg = parse(data)
    email_parser = BytesHeaderParser(policy=compat32)
    sdp_value = parse_sdp(SDP)

    # five passes of distinct messages: no pass repeats what an earlier one parsed
    datas = [[invite(f"z9hG4bKp{k}x{i}", k * n + i) for i in range(n)] for k in range(5)]
    bodies = [[sdp(k * n + i) for i in range(n)] for k in range(5)]

    def validated(item: bytes) -> object:
        return validate_request(parse(item))  # type: ignore[arg-type]

    def response() -> object:
        return build_response(msg, 200, to_tag="abc")

    def rewrite() -> object:
        return rewrite_sdp(sdp_value, address="203.0.113.1", ports=[20000])

    rows = [
        ("parse", lambda: per_item_us(parse, datas)),
        ("parse + serialise", lambda: per_item_us(lambda d: serialise(parse(d)), datas)),
        ("parse + validate_request", lambda: per_item_us(validated, datas)),
        ("stdlib email BytesHeaderParser", lambda: per_item_us(email_parser.parsebytes, datas)),
        ("build_response(200)", lambda: per_call_us(response, n)),
        ("parse_sdp (each body new)", lambda: per_item_us(parse_sdp, bodies)),
        ("parse_sdp (same body again)", lambda: per_call_us(lambda: parse_sdp(SDP), n)),
        ("rewrite_sdp", lambda: per_call_us(rewrite, n)),
    ]
    print(f"typical INVITE: {len(data)} bytes, {len(msg.headers)} headers")
    for name, fn in rows:
        print(f"{name:34s} {fn():8.2f} us")

    # transaction layer: a server INVITE transaction per call, 3 messages each
    # (INVITE in -> Deliver + 100 out, 200 from the TU -> Send), on pre-parsed messages
    source = Address("UDP", "192.0.2.10", 5060)
    calls = [parse(invite(f"z9hG4bKbench{i}", 5 * n + i)) for i in range(n)]
    oks = [build_response(c, 200, to_tag="t") for c in calls]
    layer = TransactionLayer()
    start = perf_counter()
    for now, (req, ok) in enumerate(zip(calls, oks, strict=True)):
        effects = layer.handle(RequestReceived(req, source), now)
        key = effects[0].key
        layer.handle(ResponseSubmitted(ok, key), now)
    elapsed = perf_counter() - start
    print(f"{'transaction layer per message':34s} {elapsed / (2 * n) * 1e6:8.2f} us")
    print(f"{'live transactions after run':34s} {len(layer):8d}")


if __name__ == "__main__":
    main()
