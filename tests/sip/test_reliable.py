"""RFC 3262 bookkeeping (vos3k/sip/reliable.py): RSeq/RAck, the UAS sender, the UAC receiver."""

from __future__ import annotations

import pytest

from vos3k.sip.message import Response, parse
from vos3k.sip.reliable import (
    RAck,
    ReliableReceiver,
    ReliableSender,
    Support,
    Verdict,
    is_reliable,
    parse_rack,
    parse_rseq,
    support,
)


def invite(*headers: str):
    lines = [
        "INVITE sip:222@127.0.0.1 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1",
        "From: <sip:111@192.0.2.10>;tag=a",
        "To: <sip:222@127.0.0.1>",
        "Call-ID: x",
        "CSeq: 7 INVITE",
        *headers,
        "Content-Length: 0",
    ]
    return parse(("\r\n".join(lines) + "\r\n\r\n").encode())


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (("Require: 100rel",), Support.REQUIRED),
        (("Supported: timer, 100REL",), Support.SUPPORTED),
        (("Supported: 100rel", "Require: 100rel"), Support.REQUIRED),
        (("Supported: timer",), Support.NONE),
        ((), Support.NONE),
    ],
)
def test_support(headers, expected):
    assert support(invite(*headers)) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", 1), (" 4294967295 ", 4294967295), ("0", None), ("4294967296", None),
     ("-1", None), ("1a", None), ("", None), (None, None)],
)  # fmt: skip
def test_parse_rseq(value, expected):
    assert parse_rseq(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("776656 1 INVITE", RAck(776656, 1, "INVITE")), ("1  2\tINVITE", RAck(1, 2, "INVITE")),
     ("1 INVITE", None), ("x 1 INVITE", None), ("1 y INVITE", None), ("0 1 INVITE", None),
     (None, None)],
)  # fmt: skip
def test_parse_rack(value, expected):
    assert parse_rack(value) == expected
    if expected is not None:
        assert parse_rack(str(expected)) == expected


def provisional(status: int, body: bytes = b"") -> Response:
    return Response(status, "Ringing", (("To", "<sip:222@h>;tag=t"),), body)


def test_sender_numbers_holds_back_and_matches():
    sender = ReliableSender(invite_cseq=7, first_rseq=lambda: 1000)
    first = sender.send(provisional(180), has_sdp=False)
    assert first is not None and is_reliable(first)
    assert (first.header("require"), first.header("rseq")) == ("100rel", "1000")
    assert not sender.blocks_answer
    # §3: the next one waits for the first one's PRACK
    assert sender.send(provisional(183, b"v=0"), has_sdp=True) is None
    assert sender.pracked(RAck(1000, 6, "INVITE")) == (False, None)  # wrong CSeq
    assert sender.pracked(RAck(999, 7, "INVITE")) == (False, None)  # wrong RSeq
    assert sender.pracked(None) == (False, None)
    matched, following = sender.pracked(RAck(1000, 7, "invite"))
    assert matched and following is not None
    assert (following.status, following.header("rseq")) == (183, "1001")
    assert sender.blocks_answer  # §3: an unacknowledged 18x with SDP holds the 2xx
    assert sender.pracked(RAck(1000, 7, "INVITE")) == (False, None)  # acknowledged already
    assert sender.pracked(RAck(1001, 7, "INVITE")) == (True, None)
    assert not sender.blocks_answer


def test_sender_finish_and_drop_queued():
    sender = ReliableSender(1, first_rseq=lambda: 1)
    sender.send(provisional(180), has_sdp=True)
    sender.send(provisional(183), has_sdp=True)
    sender.drop_queued()
    assert sender.pracked(RAck(1, 1, "INVITE")) == (True, None)
    sender.send(provisional(180), has_sdp=True)
    sender.finish()
    assert sender.outstanding is None and not sender.blocks_answer


def test_sender_first_rseq_is_random_in_range():
    seen = {ReliableSender(1).send(provisional(180), False).header("rseq") for _ in range(20)}
    assert len(seen) > 1
    assert all(1 <= int(v) <= 2**31 - 1 for v in seen)


def test_receiver_orders_by_rseq():
    receiver = ReliableReceiver()
    assert receiver.accept(50) is Verdict.NEW
    assert receiver.accept(50) is Verdict.RETRANSMISSION
    assert receiver.accept(52) is Verdict.OUT_OF_ORDER
    assert receiver.accept(51) is Verdict.NEW
    assert receiver.accept(49) is Verdict.RETRANSMISSION
    assert receiver.accept(52) is Verdict.NEW


def test_is_reliable_needs_require_and_rseq():
    base = (("To", "<sip:222@h>;tag=t"),)
    assert not is_reliable(Response(180, "R", (*base, ("Require", "100rel")), b""))
    assert not is_reliable(Response(180, "R", (*base, ("RSeq", "1")), b""))
    assert not is_reliable(Response(100, "T", (*base, ("Require", "100rel"), ("RSeq", "1")), b""))
    assert is_reliable(Response(183, "P", (*base, ("Require", "100rel"), ("RSeq", "1")), b""))
