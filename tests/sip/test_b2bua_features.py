"""B2BUA session timers (RFC 4028), the no-timer probe and PAI/Privacy pass-through.

A real endpoint (transactions, UDP retransmissions) with a recording transport, the
real SipCallLayer, and an engine stand-in that records what the B2BUA asks of it.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from twisted.internet.task import Clock

from tests.sip.test_endpoint import OPS, FakeTransport
from vos3k.media.ports import PortsExhausted
from vos3k.params import LiveParams
from vos3k.sip.b2bua import SipCallLayer
from vos3k.sip.endpoint import SipEndpoint
from vos3k.sip.message import IdSource, Request, Response, build_response, parse
from vos3k.sip.transaction import Address
from vos3k.store.db import open_store
from vos3k.switch.engine import Accepted
from vos3k.switch.legs import Answered, Ending, Media, Setup
from vos3k.switch.reasons import EndReason

CUSTOMER = Address("UDP", "192.0.2.10", 5060)
VENDOR = Address("UDP", "192.0.2.50", 5060)
SDP_BODY = b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
SDP_BODY += b"m=audio 4000 RTP/AVP 0\r\n"
VENDOR_SDP = SDP_BODY.replace(b"192.0.2.10", b"192.0.2.50")


class FakeEngine:
    def __init__(self, trusted: bool = True):
        self.events: list = []
        self.released: list[tuple[str, EndReason]] = []
        self.gateway = SimpleNamespace(name="CUST") if trusted else None

    def incoming(self, leg, arrival):
        self.arrival = arrival
        return Accepted("c1", self.events.append)

    def live(self, call_id):
        return SimpleNamespace(ctx=SimpleNamespace(caller_gateway=self.gateway))

    def release(self, call_id, reason):
        self.released.append((call_id, reason))
        return True


class Rig:
    def __init__(self, trusted=True, **params):
        self.store = open_store(None)
        self.params = LiveParams(self.store.params)
        for name, value in params.items():
            self.params.set(name, value, OPS)
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.endpoint = SipEndpoint(self.clock, self.params, phone_of=lambda _e: None)
        self.endpoint.transport = FakeTransport()
        self.endpoint.startService()
        self.engine = FakeEngine(trusted)
        self.layer = SipCallLayer(self.endpoint, self.engine, None, self.params, self.clock,
                                  IdSource())  # fmt: skip
        self.endpoint.call_layer = self.layer
        self._branch = 0

    # -- the customer side ---------------------------------------------------------------

    def customer_invite(self, *extra: str, from_user="111") -> Request:
        self._branch += 1
        lines = [
            "INVITE sip:222@127.0.0.1:5060 SIP/2.0",
            f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKc{self._branch}",
            "Max-Forwards: 70",
            f"From: <sip:{from_user}@192.0.2.10>;tag=cust",
            "To: <sip:222@127.0.0.1>",
            "Call-ID: cust-call@192.0.2.10",
            "CSeq: 1 INVITE",
            "Contact: <sip:111@192.0.2.10:5060>",
            *extra,
            "Content-Type: application/sdp",
            f"Content-Length: {len(SDP_BODY)}",
        ]
        message = parse(("\r\n".join(lines) + "\r\n\r\n").encode() + SDP_BODY)
        self.endpoint.message_received(message, CUSTOMER)
        return message

    def caller(self):
        return self.layer.callers.get("c1")

    # -- the vendor side -----------------------------------------------------------------

    def offer(self) -> Request:
        setup = Setup("c1", 1, "111", "222", VENDOR.host, VENDOR.port, "sip",
                      media=Media(body=SDP_BODY), proxy_media=False)  # fmt: skip
        self.callee = self.layer.create_leg(setup, self.events_of_callee.append)
        self.events_of_callee.clear()
        self.callee.offer(setup)
        return self.requests_to(VENDOR, "INVITE")[-1]

    events_of_callee: list = []

    def vendor_answers(self, invite: Request, *extra: tuple[str, str]) -> None:
        response = build_response(
            invite, 200, to_tag="vend",
            headers=(("Contact", "<sip:222@192.0.2.50:5060>"), *extra),
            body=VENDOR_SDP, content_type="application/sdp",
        )  # fmt: skip
        self.endpoint.message_received(response, VENDOR)

    def connect(self, *vendor_headers: tuple[str, str]) -> None:
        """The vendor answers and the engine answers the caller (what call.py does)."""
        self.vendor_answers(self.offer(), *vendor_headers)
        assert any(isinstance(e, Answered) for e in self.events_of_callee)
        self.caller().answer(Media(body=VENDOR_SDP))

    # -- the wire ----------------------------------------------------------------------

    def sent(self):
        return self.endpoint.transport.sent

    def requests_to(self, where: Address, method: str | None = None) -> list[Request]:
        """Each request sent there once (retransmissions left out)."""
        seen: dict[tuple, Request] = {}
        for m, d, _e in self.sent():
            if isinstance(m, Request) and d == where and (method is None or m.method == method):
                seen.setdefault((m.call_id(), m.cseq().number, m.method), m)
        return list(seen.values())

    def responses_to(self, where: Address) -> list[Response]:
        return [m for m, d, _e in self.sent() if isinstance(m, Response) and d == where]

    def reply(self, request: Request, status: int, source: Address, *extra) -> None:
        body = VENDOR_SDP if request.method == "INVITE" and status < 300 else b""
        response = build_response(request, status, headers=extra, body=body,
                                  content_type="application/sdp" if body else None)  # fmt: skip
        self.endpoint.message_received(response, source)

    def advance(self, seconds: float) -> None:
        self.clock.pump([1.0] * int(seconds))


@pytest.fixture
def rig():
    r = Rig(SS_SIP_NO_TIMER_REINVITE_INTERVAL="0")
    yield r
    r.endpoint.stopService()


def final_to_customer(rig) -> Response:
    finals = [r for r in rig.responses_to(CUSTOMER) if r.status >= 200]
    return finals[-1]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(("Session-Expires: 60", "Supported: timer"),
                     (422, "Session Interval Too Small", "90"), id="rfc4028-s9-422-min-se"),
        pytest.param(("Session-Expires: 80", "Min-SE: 80"),
                     (422, "Session Interval Too Small", "90"),
                     id="rfc4028-s9-422-our-min-se-wins"),
        pytest.param(("Session-Expires: soon",),
                     (400, "Session-Expires: 'soon' is not delta-seconds", None),
                     id="rfc4028-s4-bad-session-expires-400"),
    ],
)  # fmt: skip
def test_bad_or_too_brief_session_expires_refused_before_admission(rig, headers, expected):
    rig.customer_invite(*headers)
    final = final_to_customer(rig)
    assert (final.status, final.reason, final.header("min-se")) == expected
    assert not hasattr(rig.engine, "arrival")  # no call, no CDR


@pytest.mark.parametrize(
    ("headers", "session_expires", "require"),
    [
        pytest.param(("Session-Expires: 90;refresher=uas", "Supported: timer"),
                     "90;refresher=uas", "timer", id="rfc4028-s9-uac-asks-us-to-refresh"),
        pytest.param(("Session-Expires: 1800", "Supported: timer"), "600;refresher=uac",
                     "timer", id="rfc4028-s9-lowered-to-ss-sip-session-ttl"),
        pytest.param(("Supported: timer",), "600;refresher=uac", "timer",
                     id="rfc4028-s9-we-add-session-expires"),
        pytest.param(("Session-Expires: 300",), "300;refresher=uas", None,
                     id="rfc4028-s9-unsupported-we-refresh"),
        pytest.param((), None, None, id="rfc4028-no-timer"),
    ],
)  # fmt: skip
def test_caller_200_carries_the_negotiated_timer(rig, headers, session_expires, require):
    rig.customer_invite(*headers)
    rig.connect()
    ok = final_to_customer(rig)
    assert ok.status == 200
    assert ok.header("session-expires") == session_expires
    assert ok.header("require") == require


def test_we_refresh_the_caller_with_update_and_481_ends_the_call(rig):
    rig.params.set("SS_SIP_SESSION_UPDATE_SEGMENT", "3", OPS)
    rig.customer_invite("Session-Expires: 90;refresher=uas", "Supported: timer",
                        "Allow: INVITE, ACK, BYE, UPDATE")  # fmt: skip
    rig.connect()
    rig.advance(29)
    assert rig.requests_to(CUSTOMER, "UPDATE") == []
    rig.advance(1)  # 90 / 3 = 30 s
    (update,) = rig.requests_to(CUSTOMER, "UPDATE")
    assert update.header("session-expires") == "90;refresher=uac"
    assert update.header("to").endswith("tag=cust") and update.body == b""
    rig.reply(update, 200, CUSTOMER, ("Session-Expires", "90;refresher=uac"))
    rig.advance(30)
    second = rig.requests_to(CUSTOMER, "UPDATE")[-1]
    assert second.cseq().number == update.cseq().number + 1
    assert rig.engine.released == []
    rig.reply(second, 481, CUSTOMER)
    assert rig.engine.released == [("c1", EndReason.SESSION_TIMEOUT)]


def test_refresh_with_reinvite_offers_the_same_sdp_and_is_acked(rig):
    rig.customer_invite("Session-Expires: 90;refresher=uas", "Supported: timer")
    rig.connect()
    rig.advance(45)
    (reinvite,) = [
        r for r in rig.requests_to(CUSTOMER, "INVITE") if r.header("to").endswith("cust")
    ]
    assert reinvite.body == VENDOR_SDP  # what our 200 gave the caller (RFC 3264 §8)
    rig.reply(reinvite, 200, CUSTOMER)
    acks = rig.requests_to(CUSTOMER, "ACK")
    assert [a.cseq().number for a in acks] == [reinvite.cseq().number]
    rig.advance(44)
    assert rig.engine.released == []


def test_no_answer_to_the_refresh_ends_the_call(rig):
    rig.customer_invite("Session-Expires: 90;refresher=uas", "Supported: timer")
    rig.connect()
    rig.advance(45)
    rig.advance(32)  # Timer B: 64 * T1
    assert rig.engine.released == [("c1", EndReason.SESSION_TIMEOUT)]


def test_caller_that_never_refreshes_expires(rig):
    rig.customer_invite("Session-Expires: 120;refresher=uac", "Supported: timer")
    rig.connect()
    rig.advance(87)  # RFC 4028 §10: 120 - min(32, 40) = 88 s
    assert rig.engine.released == []
    rig.advance(1)
    assert rig.engine.released == [("c1", EndReason.SESSION_TIMEOUT)]


def test_caller_refresh_relayed_restarts_both_legs(rig):
    rig.customer_invite("Session-Expires: 120;refresher=uac", "Supported: timer")
    rig.connect(("Session-Expires", "120;refresher=uas"), ("Require", "timer"))
    rig.advance(80)
    # the customer refreshes: relayed to the vendor, with the vendor leg's timer
    ok_to_customer = final_to_customer(rig)
    update = parse(
        (
            "UPDATE sip:127.0.0.1:5060 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKup1\r\nMax-Forwards: 70\r\n"
            f"From: <sip:111@192.0.2.10>;tag=cust\r\nTo: {ok_to_customer.header('to')}\r\n"
            "Call-ID: cust-call@192.0.2.10\r\nCSeq: 2 UPDATE\r\n"
            "Session-Expires: 120;refresher=uac\r\nSupported: timer\r\nContent-Length: 0\r\n\r\n"
        ).encode()
    )
    rig.endpoint.message_received(update, CUSTOMER)
    (relayed,) = rig.requests_to(VENDOR, "UPDATE")
    assert relayed.header("session-expires") == "120;refresher=uas"  # the vendor refreshes
    rig.reply(relayed, 200, VENDOR, ("Session-Expires", "120;refresher=uas"), ("Require", "timer"))
    answer = final_to_customer(rig)
    assert (answer.status, answer.header("session-expires")) == (200, "120;refresher=uac")
    rig.advance(80)  # 160 s after answer, 80 after the refresh: both legs still alive
    assert rig.engine.released == []
    rig.advance(8)
    assert rig.engine.released[0] == ("c1", EndReason.SESSION_TIMEOUT)


def test_vendor_invite_offers_the_timer(rig):
    rig.params.set("SS_SIP_SESSION_TTL", "1800", OPS)
    rig.customer_invite()
    invite = rig.offer()
    assert invite.header("session-expires") == "1800"
    assert invite.header("min-se") == "90"
    assert "timer" in invite.values("supported")


def test_vendor_asks_us_to_refresh(rig):
    rig.customer_invite()
    rig.connect(("Session-Expires", "100;refresher=uac"), ("Require", "timer"),
                ("Allow", "INVITE, ACK, BYE"))  # fmt: skip
    rig.advance(50)
    (reinvite,) = [r for r in rig.requests_to(VENDOR, "INVITE") if r.cseq().number == 2]
    assert reinvite.header("session-expires") == "100;refresher=uac"
    assert reinvite.body == SDP_BODY
    rig.reply(reinvite, 408, VENDOR)
    assert rig.engine.released == [("c1", EndReason.SESSION_TIMEOUT)]


@pytest.mark.parametrize(
    ("interval", "probes"),
    [pytest.param("30", 1, id="ss-sip-no-timer-reinvite-interval"),
     pytest.param("0", 0, id="ss-sip-no-timer-reinvite-interval-off")],
)  # fmt: skip
def test_vendor_without_timer_is_probed(interval, probes):
    rig = Rig(SS_SIP_NO_TIMER_REINVITE_INTERVAL=interval)
    rig.customer_invite()
    rig.connect()  # no Session-Expires in the vendor's 200
    rig.advance(30)
    reinvites = [r for r in rig.requests_to(VENDOR, "INVITE") if r.cseq().number == 2]
    assert len(reinvites) == probes
    if probes:
        assert reinvites[0].header("session-expires") is None
        rig.reply(reinvites[0], 488, VENDOR)  # an answer: the dialog is alive
        assert rig.engine.released == []
        rig.advance(30)
        third = [r for r in rig.requests_to(VENDOR, "INVITE") if r.cseq().number == 3]
        rig.reply(third[0], 481, VENDOR)
        assert rig.engine.released == [("c1", EndReason.SESSION_TIMEOUT)]
    rig.endpoint.stopService()


def test_ending_the_call_stops_the_timers(rig):
    rig.customer_invite("Session-Expires: 90;refresher=uas", "Supported: timer")
    rig.connect(("Session-Expires", "90;refresher=uac"), ("Require", "timer"))
    ending = SimpleNamespace(reason=EndReason.NORMAL_CLEARING, sip_code=None, q850=16)
    rig.caller().hang_up(ending)
    rig.callee.hang_up(ending)
    before = len(rig.requests_to(CUSTOMER)) + len(rig.requests_to(VENDOR))
    rig.advance(200)
    assert len(rig.requests_to(CUSTOMER)) + len(rig.requests_to(VENDOR)) == before
    assert rig.engine.released == []


@pytest.mark.parametrize(
    ("trusted", "extra", "from_user", "pai", "privacy", "vendor_from"),
    [
        pytest.param(True, ("P-Asserted-Identity: <sip:333@192.0.2.10>", "Privacy: id"),
                     "anonymous", "<sip:111@127.0.0.1:5060>", "id", '"Anonymous"',
                     id="rfc3325-s5-trusted-anonymous"),
        pytest.param(True, ("P-Asserted-Identity: <sip:333@192.0.2.10>",), "444",
                     "<sip:111@127.0.0.1:5060>", None, "<sip:111@", id="rfc3325-trusted-pai"),
        pytest.param(True, (), "444", None, None, "<sip:111@", id="rfc3325-no-pai"),
        pytest.param(False, ("P-Asserted-Identity: <sip:333@192.0.2.10>", "Privacy: id"),
                     "444", None, None, "<sip:111@", id="rfc3325-s5-untrusted-phone-dropped"),
    ],
)  # fmt: skip
def test_pai_and_privacy_pass_through(trusted, extra, from_user, pai, privacy, vendor_from):
    rig = Rig(trusted=trusted)
    rig.customer_invite(*extra, from_user=from_user)
    if extra:
        assert rig.engine.arrival.caller == "333"  # the caller number comes from PAI
    invite = rig.offer()
    assert invite.header("p-asserted-identity") == pai
    assert invite.header("privacy") == privacy
    assert invite.header("from").startswith(vendor_from)
    rig.endpoint.stopService()


def test_first_attempt_inside_incoming_sees_the_customer_invite():
    """The engine offers the first attempt from inside incoming(), before attach()."""
    rig = Rig()
    seen = []

    def incoming(leg, arrival):
        setup = Setup("c1", 1, "111", "222", VENDOR.host, VENDOR.port, "sip", proxy_media=False)
        rig.layer.create_leg(setup, seen.append).offer(setup)
        return Accepted("c1", seen.append)

    rig.engine.incoming = incoming
    rig.customer_invite("P-Asserted-Identity: <sip:333@192.0.2.10>", "Privacy: id")
    (invite,) = rig.requests_to(VENDOR, "INVITE")
    assert invite.header("privacy") == "id"
    assert rig.layer.arriving is None
    rig.endpoint.stopService()


def test_ended_legs_leave_no_dialog_behind(rig):
    # each leg drops its own (Call-ID, tag) entries: no scan of every live dialog
    rig.customer_invite()
    rig.connect()
    caller, callee = rig.caller(), rig.callee
    assert set(rig.layer.dialogs.values()) == {caller, callee}
    ending = Ending(EndReason.NORMAL_CLEARING, None, 16)
    caller.hang_up(ending)
    assert set(rig.layer.dialogs.values()) == {callee}
    callee.hang_up(ending)
    assert rig.layer.dialogs == {}


class ExhaustedMedia:
    """A media manager whose port range is used up (SPEC §12)."""

    def open_session(self, call_id):
        return PortsExhausted(low=10000, high=10003, in_use=2)

    def session(self, call_id):
        return None


def test_no_rtp_pair_is_a_server_release_not_a_vendor_503(rig):
    """SPEC §3 step 9: no free RTP pair ends the call as 5 (503, direction 2) through
    the engine, before any INVITE, instead of a vendor failure to fail over on."""
    rig.layer.media = ExhaustedMedia()
    setup = Setup("c1", 1, "111", "222", VENDOR.host, VENDOR.port, "sip",
                  media=Media(body=SDP_BODY), proxy_media=True)  # fmt: skip
    reported: list = []
    leg = rig.layer.create_leg(setup, reported.append)
    leg.offer(setup)
    assert rig.engine.released == [("c1", EndReason.NETWORK_CONGESTION)]
    assert reported == []
    assert rig.requests_to(VENDOR) == []
    leg.cancel()  # the engine's end cancels the attempt: nothing was sent, nothing to send
    assert rig.sent() == []
