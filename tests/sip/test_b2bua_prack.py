"""100rel/PRACK in the B2BUA (RFC 3262), hop by hop: reliable 18x to the customer, PRACKs
to the vendor.  The rig of test_b2bua_features: a real endpoint, a recording transport."""

from __future__ import annotations

import pytest

from tests.sip.test_b2bua_features import CUSTOMER, SDP_BODY, VENDOR, VENDOR_SDP, Rig
from vos3k.sip.message import Request, Response, build_response, parse
from vos3k.switch.legs import Answered, Ending, Media, Progress, Ringing
from vos3k.switch.reasons import EndReason

EARLY = Media(body=VENDOR_SDP)


@pytest.fixture
def rig():
    r = Rig(SS_SIP_NO_TIMER_REINVITE_INTERVAL="0")
    yield r
    r.endpoint.stopService()


def to_customer(rig, status: int | None = None) -> list[Response]:
    return [r for r in rig.responses_to(CUSTOMER) if status is None or r.status == status]


def prack(rig, rseq: str, cseq: int = 2, rack_cseq: int = 1, to_tag: str | None = None) -> None:
    tag = to_tag or rig.caller().tag
    lines = [
        "PRACK sip:127.0.0.1:5060 SIP/2.0",
        f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKpr{rseq}{cseq}",
        "Max-Forwards: 70",
        "From: <sip:111@192.0.2.10>;tag=cust",
        f"To: <sip:222@127.0.0.1>;tag={tag}",
        "Call-ID: cust-call@192.0.2.10",
        f"CSeq: {cseq} PRACK",
        f"RAck: {rseq} {rack_cseq} INVITE",
        "Content-Length: 0",
    ]
    rig.endpoint.message_received(parse(("\r\n".join(lines) + "\r\n\r\n").encode()), CUSTOMER)


def prack_answers(rig) -> list[int]:
    return [r.status for r in to_customer(rig) if r.cseq().method == "PRACK"]


# -- towards the customer (we are the UAS) ---------------------------------------------


@pytest.mark.parametrize(
    ("headers", "ring_reliable", "progress_reliable"),
    [
        pytest.param(("Require: 100rel",), True, True, id="rfc3262-s3-required-all"),
        pytest.param(("Supported: 100rel",), False, True, id="supported-sdp-18x-only"),
        pytest.param((), False, False, id="not-negotiated"),
    ],
)
def test_which_18x_go_reliably(rig, headers, ring_reliable, progress_reliable):
    rig.customer_invite(*headers)
    rig.caller().ring(None)
    (ringing,) = to_customer(rig, 180)
    assert (ringing.header("rseq") is not None) == ring_reliable
    if ring_reliable:
        assert ringing.header("require") == "100rel"
        prack(rig, ringing.header("rseq"))
    rig.caller().progress(EARLY)
    progress = to_customer(rig, 183)[0]
    assert (progress.header("rseq") is not None) == progress_reliable
    if ring_reliable and progress_reliable:
        assert int(progress.header("rseq")) == int(ringing.header("rseq")) + 1


def test_reliable_18x_is_retransmitted_until_its_prack(rig):
    rig.customer_invite("Require: 100rel")
    rig.caller().ring(None)
    rig.clock.advance(0.5)
    rig.clock.advance(1.0)  # T1, then 2*T1 (RFC 3262 §3)
    assert len(to_customer(rig, 180)) == 3
    rseq = to_customer(rig, 180)[0].header("rseq")
    prack(rig, rseq)
    assert prack_answers(rig) == [200]
    rig.advance(40)
    assert len(to_customer(rig, 180)) == 3
    assert rig.engine.released == []


def test_a_prack_that_matches_nothing_gets_481(rig):
    rig.customer_invite("Require: 100rel")
    rig.caller().ring(None)
    rseq = int(to_customer(rig, 180)[0].header("rseq"))
    prack(rig, str(rseq + 1))  # not that one
    prack(rig, str(rseq), cseq=3, rack_cseq=9)  # not that INVITE
    assert prack_answers(rig) == [481, 481]
    rig.clock.advance(0.5)
    assert len(to_customer(rig, 180)) == 2  # still unacknowledged: still resent


def test_the_next_18x_waits_for_the_prack(rig):
    rig.customer_invite("Require: 100rel")
    rig.caller().ring(None)
    rig.caller().progress(EARLY)
    assert to_customer(rig, 183) == []
    prack(rig, to_customer(rig, 180)[0].header("rseq"))
    (progress,) = to_customer(rig, 183)
    assert progress.body == VENDOR_SDP


def test_the_2xx_waits_for_the_prack_of_an_18x_with_sdp(rig):
    rig.customer_invite("Supported: 100rel")
    rig.caller().progress(EARLY)
    rig.caller().answer(EARLY)
    assert to_customer(rig, 200) == []  # RFC 3262 §3
    prack(rig, to_customer(rig, 183)[0].header("rseq"))
    oks = [r for r in to_customer(rig, 200) if r.cseq().method == "INVITE"]
    assert len(oks) == 1 and oks[0].body == VENDOR_SDP
    assert prack_answers(rig) == [200]
    # the dialog the PRACK used goes on: a BYE with a higher CSeq is accepted
    assert rig.caller().dialog.remote_cseq == 2


def test_no_prack_within_64_t1_ends_the_call(rig):
    rig.customer_invite("Require: 100rel")
    rig.caller().ring(None)
    rig.advance(31)
    assert rig.engine.released == []
    rig.advance(1)
    assert rig.engine.released == [("c1", EndReason.SESSION_TIMEOUT)]
    sent = len(to_customer(rig, 180))
    rig.caller().hang_up(Ending(EndReason.SESSION_TIMEOUT, None, 102))
    assert to_customer(rig)[-1].status == 500  # §3: a 5xx to the INVITE
    rig.advance(60)
    assert len(to_customer(rig, 180)) == sent


def test_a_bye_in_the_early_dialog_ends_the_invite_with_487(rig):
    rig.customer_invite("Require: 100rel")
    rig.caller().ring(None)
    lines = [
        "BYE sip:127.0.0.1:5060 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKbye",
        "Max-Forwards: 70",
        "From: <sip:111@192.0.2.10>;tag=cust",
        f"To: <sip:222@127.0.0.1>;tag={rig.caller().tag}",
        "Call-ID: cust-call@192.0.2.10",
        "CSeq: 2 BYE",
        "Content-Length: 0",
    ]
    rig.endpoint.message_received(parse(("\r\n".join(lines) + "\r\n\r\n").encode()), CUSTOMER)
    rig.caller().hang_up(Ending(EndReason.CALLER_HANGUP, 487, 16))
    finals = [(r.status, r.cseq().method) for r in to_customer(rig) if r.status >= 200]
    assert finals == [(200, "BYE"), (487, "INVITE")]
    assert rig.layer.dialogs == {}


# -- towards the vendor (we are the UAC) -------------------------------------------------


def reliable_18x(invite: Request, status: int, rseq: int, tag: str = "vend") -> Response:
    return build_response(
        invite, status, to_tag=tag,
        headers=(("Contact", "<sip:222@192.0.2.50:5060>"), ("Require", "100rel"),
                 ("RSeq", str(rseq))),
        body=VENDOR_SDP if status == 183 else b"",
        content_type="application/sdp" if status == 183 else None,
    )  # fmt: skip


def test_our_invite_supports_100rel_only_with_an_offer(rig):
    assert "100rel" in rig.offer().values("supported")


def test_vendor_reliable_18x_are_pracked_once_in_order(rig):
    rig.customer_invite()
    invite = rig.offer()
    rig.endpoint.message_received(reliable_18x(invite, 180, 7), VENDOR)
    rig.endpoint.message_received(reliable_18x(invite, 180, 7), VENDOR)  # retransmission
    rig.endpoint.message_received(reliable_18x(invite, 183, 9), VENDOR)  # 8 is missing
    rig.endpoint.message_received(reliable_18x(invite, 183, 8), VENDOR)
    pracks = rig.requests_to(VENDOR, "PRACK")
    assert [p.header("rack") for p in pracks] == ["7 1 INVITE", "8 1 INVITE"]
    assert [p.cseq().number for p in pracks] == [2, 3]
    assert all(p.header("to").endswith("tag=vend") for p in pracks)
    assert pracks[0].request_uri() is not None and str(pracks[0].request_uri()).endswith(
        "192.0.2.50:5060"
    )
    events = [type(e) for e in rig.events_of_callee]
    assert events == [Ringing, Progress]  # each new 18x once; no retransmission, no gap
    for p in pracks:
        rig.reply(p, 200, VENDOR)
    # the 2xx confirms the dialog the PRACKs numbered: the ACK keeps the INVITE's CSeq,
    # our next request goes past the PRACKs'
    rig.vendor_answers(invite)
    assert any(isinstance(e, Answered) for e in rig.events_of_callee)
    (ack,) = rig.requests_to(VENDOR, "ACK")
    assert ack.cseq().number == 1
    rig.callee.hang_up(Ending(EndReason.NORMAL_CLEARING, None, 16))
    (bye,) = rig.requests_to(VENDOR, "BYE")
    assert bye.cseq().number == 4


def test_an_unreliable_18x_is_not_pracked(rig):
    rig.customer_invite()
    invite = rig.offer()
    rig.reply(invite, 180, VENDOR, ("Contact", "<sip:222@192.0.2.50:5060>"))
    assert rig.requests_to(VENDOR, "PRACK") == []
    assert [type(e) for e in rig.events_of_callee] == [Ringing]


def test_end_to_end_reliable_early_media(rig):
    """A vendor's reliable 183 reaches a 100rel customer reliably, each hop PRACKed."""
    rig.customer_invite("Supported: 100rel")
    invite = rig.offer()
    rig.endpoint.message_received(reliable_18x(invite, 183, 1), VENDOR)
    (progress_event,) = rig.events_of_callee
    rig.caller().progress(progress_event.media)  # what the engine does with Progress
    (to_caller,) = to_customer(rig, 183)
    assert to_caller.header("require") == "100rel" and to_caller.body == SDP_BODY.replace(
        b"192.0.2.10", b"192.0.2.50"
    )
    assert len(rig.requests_to(VENDOR, "PRACK")) == 1
