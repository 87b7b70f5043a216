"""The H.323 call core: captured Setups and responses replayed, timers with literal now_ms."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vos3k.h323 import call as c
from vos3k.h323 import h225, h245, media, q931, tpkt
from vos3k.h323.h225 import Body, Codec, TransportAddress
from vos3k.h323.q931 import MessageType
from vos3k.switch.legs import Answered, Failed, HungUp, Proceeding, Progress, Ringing

from .h323_captures import TSHARK, tshark_fields, write_pcap
from .replay import NDPI, OOH_FAST, OOH_SLOW, tpkt_payloads

FAST = tpkt_payloads(OOH_FAST, 1720)
SLOW = tpkt_payloads(OOH_SLOW, 1720)
SLOW_H245 = tpkt_payloads(OOH_SLOW, 12030)
NDPI_Q931 = tpkt_payloads(NDPI, 1720)
NDPI_H245 = tpkt_payloads(NDPI, 1232)
RELAY = TransportAddress("203.0.113.5", 30000)
ANSWER = media.to_media(RELAY, (Codec.G711_ULAW,))
SETTINGS = c.CallSettings()


def received(data: bytes) -> c.MessageReceived:
    return c.MessageReceived(q931.parse(data))


def sent(effects, kind=None) -> list[tuple[q931.Message, h225.UserInformation]]:
    out = []
    for effect in effects:
        if isinstance(effect, c.SendQ931) and (kind is None or effect.message_type == kind):
            message = q931.parse(effect.data)
            out.append((message, h225.parse_user_information(message.user_user)))
    return out


def reports(effects) -> list:
    return [e.event for e in effects if isinstance(e, c.Report)]


def incoming(settings=SETTINGS) -> c.H323Call:
    return c.H323Call(settings, call_reference=0, outgoing=False, h245_sdn=77)


# ---------------------------------------------------------------- incoming


@pytest.mark.parametrize(
    ("capture", "frame", "caller", "callee", "offer"),
    [
        (FAST, 4, "", "", "127.0.0.3:14030 PCMU"),  # ooh323c: fast start, tunnelling
        (SLOW, 4, "", "", None),  # ooh323c: slow start, separate H.245
        (NDPI_Q931, 6, "m.jemec", "", None),  # OpenH323 Callgen323
        (NDPI_Q931, 47, "17", "", None),  # ABILIS CPX 2000: calling party number
    ],
    ids=["ooh323c-faststart", "ooh323c-slowstart", "callgen323", "abilis-cpx"],
)
def test_captured_setup_gets_call_proceeding(capture, frame, caller, callee, offer):
    call = incoming()
    effects = call.handle(received(capture[frame]), 1000)
    ((proceeding, info),) = sent(effects)
    assert proceeding.message_type == MessageType.CALL_PROCEEDING
    assert proceeding.from_destination is True
    assert proceeding.call_reference == q931.parse(capture[frame]).call_reference
    assert info.body is Body.CALL_PROCEEDING
    (arrived,) = [e for e in effects if isinstance(e, c.CallArrived)]
    assert (arrived.caller, arrived.callee) == (caller, callee)
    if offer is None:
        assert arrived.media is None
    else:
        assert f"{arrived.media.address}:{arrived.media.port} {arrived.media.codecs[0]}" == offer
    assert call.state is c.State.INCOMING_PROCEEDING
    # No route (SPEC §8 reason 6): Release Complete with cause 3, then close.
    effects = call.handle(c.Release(3), 1100)
    ((release, _info),) = sent(effects)
    assert release.find(q931.Cause).value == 3
    assert effects[-1] == c.Close()
    assert call.state is c.State.RELEASED


def test_call_proceeding_not_immediately():
    call = incoming(c.CallSettings(proceeding_immediately=False))
    effects = call.handle(received(FAST[4]), 0)
    assert sent(effects) == []
    assert call.state is c.State.CALL_PRESENT


def test_malformed_uuie_setup_is_released_with_cause_100():
    # nDPI frame 65: Wireshark and pycrate both refuse its UUIE (SOURCES.md).
    call = incoming()
    effects = call.handle(received(NDPI_Q931[65]), 0)
    ((release, _),) = sent(effects)
    assert release.message_type == MessageType.RELEASE_COMPLETE
    assert release.find(q931.Cause).value == c.CAUSE_INVALID_IE
    assert release.call_reference == 1 and release.from_destination
    assert c.Close() in effects
    assert [e for e in effects if isinstance(e, c.CallArrived)] == []


@pytest.mark.parametrize(
    ("data", "cause"),
    [(b"\x09\x02\x00\x01\x05", 111), (b"\x08\x02\x00\x07\x05\x7e\x00\x09", 100)],
    ids=["§11-wrong-discriminator-111", "§11-truncated-ie-100"],
)
def test_malformed_q931_closes_with_release_complete(data, cause):
    call = incoming()
    effects = call.handle(received(data), 0)
    ((release, _),) = sent(effects)
    assert release.find(q931.Cause).value == cause
    assert effects[-1] == c.Close()


def test_fast_start_accepted_in_first_message_with_media():
    call = incoming()
    call.handle(received(FAST[4]), 0)
    effects = call.handle(c.Alert(), 10)  # 180 without SDP: no fast start yet
    ((_alerting, info),) = sent(effects)
    assert info.fast_start == ()
    effects = call.handle(c.Answer(ANSWER), 20)
    ((connect, info),) = sent(effects)
    assert connect.message_type == MessageType.CONNECT
    channels = [h225.parse_olc(e) for e in info.fast_start]
    assert {ch.number for ch in channels} == {1001, 1002}
    transmit = next(ch for ch in channels if ch.direction is h225.Direction.TRANSMIT)
    assert transmit.media_channel == RELAY
    assert info.h245_tunnelling is True
    assert call.next_deadline_ms() is None  # media is up by fast start: no H.245 timer


def test_tunnelled_h245_from_the_capture_is_answered():
    call = incoming()
    call.handle(received(FAST[4]), 0)
    call.handle(c.Answer(ANSWER), 10)
    effects = call.handle(received(FAST[12]), 20)  # Facility carrying the caller's TCS
    ((_facility, info),) = sent(effects)
    answers = [h245.parse(p) for p in info.h245_control]
    assert h245.TerminalCapabilitySetAck(1) in answers
    assert any(isinstance(m, h245.TerminalCapabilitySet) for m in answers)
    effects = call.handle(received(FAST[14]), 30)  # MSD
    ((_, info),) = sent(effects)
    (ack,) = [h245.parse(p) for p in info.h245_control]
    assert isinstance(ack, h245.MasterSlaveDeterminationAck)
    effects = call.handle(received(FAST[20]), 40)  # the caller's Release Complete, cause 16
    assert reports(effects) == [HungUp(cause=16)]
    assert c.Close() in effects


def test_slow_start_incoming_listens_and_times_out_h245():
    call = incoming()
    call.handle(received(SLOW[4]), 0)
    effects = call.handle(c.Answer(ANSWER), 1000)
    assert c.ListenH245() in effects
    assert call.next_deadline_ms() == 1000 + SETTINGS.h245_ms
    effects = call.handle(c.H245Listening(TransportAddress("203.0.113.5", 40000)), 1001)
    ((_facility, info),) = sent(effects)
    assert info.facility_reason == "startH245" and info.h245_address.port == 40000
    assert call.handle(c.Tick(), 10_999) == []
    effects = call.handle(c.Tick(), 11_000)
    ((release, _),) = sent(effects)
    assert release.find(q931.Cause).value == c.CAUSE_TEMPORARY_FAILURE  # SPEC §8 reason 15
    # The switch ends the call as 15, direction 2 (not a party's hang-up).
    assert c.MediaFailed(41) in effects and reports(effects) == []


def test_status_enquiry_gets_status_with_call_state():
    call = incoming()
    call.handle(received(FAST[4]), 0)
    info = h225.UserInformation(Body.STATUS_INQUIRY)
    enquiry = q931.Message(
        MessageType.STATUS_ENQUIRY, 5, False,
        (q931.UserUser(h225.encode_user_information(info)),),
    )  # fmt: skip
    effects = call.handle(c.MessageReceived(enquiry), 5)
    ((status, _),) = sent(effects)
    assert status.find(q931.CallState).value == 9  # U9 incoming call proceeding
    assert status.find(q931.Cause).value == 30


def test_commands_in_wrong_state_are_our_bug():
    with pytest.raises(c.LocalProtocolError):
        incoming().handle(c.Answer(ANSWER), 0)


# ---------------------------------------------------------------- outgoing


def outgoing(settings=SETTINGS) -> c.H323Call:
    return c.H323Call(
        settings, call_reference=42, outgoing=True, call_identifier=b"G" * 16,
        conference_id=b"C" * 16, h245_sdn=5,
    )  # fmt: skip


OFFER = media.to_media(TransportAddress("198.51.100.7", 20000), (Codec.G711_ULAW, Codec.G729))
PLACE = c.Place("8613800138000", "4930123456", OFFER, TransportAddress("203.0.113.5", 1720))


def test_outgoing_setup_offers_fast_start_and_tunnelling():
    call = outgoing()
    effects = call.handle(PLACE, 0)
    ((setup, info),) = sent(effects)
    assert setup.message_type == MessageType.SETUP and not setup.from_destination
    assert setup.find(q931.CalledPartyNumber).digits == "4930123456"
    assert info.destination_aliases == (h225.Alias(h225.AliasKind.DIALED_DIGITS, "4930123456"),)
    assert info.h245_tunnelling is True
    codecs = [h225.parse_olc(e).codec for e in info.fast_start]
    assert codecs == [Codec.G711_ULAW, Codec.G711_ULAW, Codec.G729, Codec.G729]
    assert call.next_deadline_ms() == SETTINGS.setup_ms


def test_outgoing_fast_start_callee_from_the_capture():
    call = outgoing()
    call.handle(PLACE, 0)
    assert reports(call.handle(received(FAST[6]), 10)) == [Proceeding()]
    ringing = reports(call.handle(received(FAST[8]), 20))
    expected = media.to_media(TransportAddress("127.0.0.2", 14032), (Codec.G711_ULAW,))
    assert ringing == [Ringing(expected)]
    assert reports(call.handle(received(FAST[10]), 30)) == [Answered(expected)]
    assert call.next_deadline_ms() is None
    effects = call.handle(c.Release(16), 40)
    ((release, _info),) = sent(effects, MessageType.RELEASE_COMPLETE)
    assert release.find(q931.Cause).value == 16


def test_outgoing_slow_start_opens_h245_and_answers_when_media_is_up():
    call = outgoing(c.CallSettings(fast_start=False, tunnelling=False))
    call.handle(PLACE, 0)
    call.handle(received(SLOW[6]), 10)
    call.handle(received(SLOW[8]), 20)
    effects = call.handle(received(SLOW[10]), 30)  # Connect with h245Address
    assert c.ConnectH245(TransportAddress("127.0.0.2", 12030)) in effects
    assert reports(effects) == []  # answered only once media is known
    effects = call.handle(c.H245Ready(), 40)
    out = [h245.parse(e.data) for e in effects if isinstance(e, c.SendH245)]
    assert [type(m) for m in out] == [h245.TerminalCapabilitySet, h245.MasterSlaveDetermination]
    peer_caps = h245.TerminalCapabilitySet(1, (h245.Capability(Codec.G711_ULAW, 20),))
    for message in (
        peer_caps,
        h245.TerminalCapabilitySetAck(1),
        h245.MasterSlaveDeterminationAck(master=False),
    ):
        effects = call.handle(c.H245Data(h245.encode(message)), 50)
    (olc,) = [h245.parse(e.data) for e in effects if isinstance(e, c.SendH245)]
    assert olc.channel.codec is Codec.G711_ULAW
    peer = TransportAddress("127.0.0.2", 5000)
    ack = h245.OpenLogicalChannelAck(olc.channel.number, peer, TransportAddress("127.0.0.2", 5001))
    effects = call.handle(c.H245Data(h245.encode(ack)), 60)
    assert reports(effects) == [Answered(media.to_media(peer, (Codec.G711_ULAW,)))]
    assert call.next_deadline_ms() is None


def test_captured_slow_start_h245_feeds_the_session():
    call = outgoing(c.CallSettings(fast_start=False, tunnelling=False))
    call.handle(PLACE, 0)
    call.handle(received(SLOW[10]), 30)
    call.handle(c.H245Ready(), 40)
    for frame in sorted(SLOW_H245):
        message = h245.parse(SLOW_H245[frame])
        if isinstance(message, h245.TerminalCapabilitySet | h245.MasterSlaveDetermination):
            call.handle(c.H245Data(SLOW_H245[frame]), 50)
    assert call.session.peer_caps is not None
    assert call.session.master is not None


@pytest.mark.parametrize(
    ("responses", "now", "report", "cause"),
    [
        ((), 10_000, Failed(), 102),  # SPEC §4 SS_H323_TIMEOUT_SETUP: 21, 408
        ((6,), 20_010, Failed(), 102),  # SS_H323_TIMEOUT_ALERTING from Call Proceeding
        ((6, 8), 120_020, Failed(code=480), 19),  # SS_H323_TIMEOUT_CONNECT: 3, 480
    ],
    ids=["§4-setup-timer", "§4-alerting-timer", "§4-connect-timer"],
)
def test_attempt_timers(responses, now, report, cause):
    call = outgoing()
    call.handle(PLACE, 0)
    for number, frame in enumerate(responses, 1):
        call.handle(received(FAST[frame]), number * 10)
    assert call.next_deadline_ms() == now
    assert call.handle(c.Tick(), now - 1) == []
    effects = call.handle(c.Tick(), now)
    assert reports(effects) == [report]
    ((release, _),) = sent(effects)
    assert release.find(q931.Cause).value == cause


def test_switch_run_timers_are_off():
    class Snap:
        h323_faststart = h323_h245_tunneling = h323_call_proceeding_immediately = 1
        h323_183_to_alerting = 0
        h323_timeout_setup_s, h323_timeout_alerting_s, h323_timeout_connect_s = 10, 20, 120
        h323_timeout_h245_s = 7

    settings = c.CallSettings.from_snapshot(Snap, switch_runs_attempt_timers=True)
    assert (settings.setup_ms, settings.h245_ms) == (None, 7000)
    call = outgoing(settings)
    call.handle(PLACE, 0)
    assert call.next_deadline_ms() is None


@pytest.mark.parametrize(
    ("ies", "reason", "expected"),
    [
        ((q931.Cause(17),), None, Failed(cause=17)),  # SPEC §8 table 2b: busy
        ((), "unreachableDestination", Failed(cause=3)),  # H.225.0 Table 5
        ((), None, Failed(cause=None)),
    ],
    ids=["cause-ie", "h225-reason", "no-cause"],
)
def test_vendor_release_before_connect(ies, reason, expected):
    call = outgoing()
    call.handle(PLACE, 0)
    info = h225.UserInformation(Body.RELEASE_COMPLETE, release_complete_reason=reason)
    message = q931.Message(
        MessageType.RELEASE_COMPLETE, 42, True,
        (*ies, q931.UserUser(h225.encode_user_information(info))),
    )  # fmt: skip
    effects = call.handle(c.MessageReceived(message), 5)
    assert reports(effects) == [expected]
    assert c.Close() in effects


def test_connection_lost_before_answer_is_unreachable():
    call = outgoing()
    call.handle(PLACE, 0)
    assert reports(call.handle(c.ConnectionLost(), 1)) == [Failed()]


def test_progress_183_to_alerting():
    call = incoming(c.CallSettings(progress_to_alerting=True))
    call.handle(received(FAST[4]), 0)
    ((alerting, info),) = sent(call.handle(c.SendProgress(ANSWER), 5))
    assert alerting.message_type == MessageType.ALERTING
    assert alerting.find(q931.ProgressIndicator).description == 8
    assert info.fast_start != ()
    call2 = incoming()
    call2.handle(received(FAST[4]), 0)
    ((progress, _),) = sent(call2.handle(c.SendProgress(ANSWER), 5))
    assert progress.message_type == MessageType.PROGRESS


def test_late_messages_are_dropped():
    call = outgoing()
    call.handle(PLACE, 0)
    call.handle(c.Release(16), 1)
    effects = call.handle(received(FAST[10]), 2)
    assert effects == [c.Dropped(c.Input.CONNECT, c.State.RELEASED)]
    assert reports(call.handle(received(FAST[8]), 3)) == []
    assert Progress not in map(type, effects)


def _everything_vos3k_sends() -> list[bytes]:
    """Each kind of Q.931 message the call core builds, from real flows."""
    out: list[c.Effect] = []
    call = incoming()
    out += call.handle(received(FAST[4]), 0)
    out += call.handle(c.SendProgress(ANSWER), 1)
    out += call.handle(c.Alert(ANSWER), 2)
    out += call.handle(c.Answer(ANSWER), 3)
    out += call.handle(received(FAST[12]), 4)  # tunnelled TCS answered in a Facility
    out += call.handle(c.Release(17), 5)
    slow = incoming()
    out += slow.handle(received(SLOW[4]), 0)
    out += slow.handle(c.Answer(ANSWER), 1)
    out += slow.handle(c.H245Listening(TransportAddress("127.0.0.1", 40000)), 2)
    status = q931.Message(
        MessageType.STATUS_ENQUIRY, 3, False,
        (q931.UserUser(h225.encode_user_information(h225.UserInformation(Body.STATUS_INQUIRY))),),
    )  # fmt: skip
    out += slow.handle(c.MessageReceived(status), 3)
    out += outgoing().handle(PLACE, 0)
    return [tpkt.encode(e.data) for e in out if isinstance(e, c.SendQ931)]


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_every_message_the_call_builds_decodes_in_tshark(tmp_path):
    frames = _everything_vos3k_sends()
    path = tmp_path / "call.pcap"
    write_pcap(path, frames, port=1720)
    fields = ["_ws.malformed", "_ws.expert.severity", "q931.message_type",
              "h225.h323_message_body", "h225.setup_element", "h225.fastStart",
              "h225.h245Tunnelling", "h245.pdu_type"]  # fmt: skip
    rows = [dict(zip(fields, row, strict=True)) for row in tshark_fields(path, fields)]
    assert len(rows) == len(frames)
    for row in rows:
        assert row["_ws.malformed"] == "" and row["_ws.expert.severity"] == "", row
    types = [int(r["q931.message_type"], 0) for r in rows]
    for kind in (MessageType.CALL_PROCEEDING, MessageType.PROGRESS, MessageType.ALERTING,
                 MessageType.CONNECT, MessageType.FACILITY, MessageType.RELEASE_COMPLETE,
                 MessageType.STATUS, MessageType.SETUP):  # fmt: skip
        assert kind in types, kind
    setup = rows[types.index(MessageType.SETUP)]
    assert (
        setup["h225.setup_element"] != "" and int(setup["h225.fastStart"]) == 4
    )  # 2 codecs x 2 directions
    assert setup["h225.h245Tunnelling"] == "1"
    assert any(r["h245.pdu_type"] for r in rows)  # tunnelled H.245 decoded too
    progress = rows[types.index(MessageType.PROGRESS)]
    assert int(progress["h225.fastStart"]) == 2  # fast start accepted in the first one


@given(st.binary(max_size=80), st.booleans())
@settings(max_examples=150, deadline=None)
def test_any_bytes_release_or_proceed_never_raise(data, as_setup):
    # Bytes behind a valid Setup header too, so the UUIE decoder sees garbage as well.
    payload = (
        (b"\x08\x02\x00\x07\x05\x7e" + len(data).to_bytes(2, "big") + data) if as_setup else data
    )
    effects = incoming().handle(received(payload), 0)
    kinds = {type(e) for e in effects}
    assert c.SendQ931 in kinds  # Call Proceeding, or Release Complete for what is unusable
    if c.CallArrived not in kinds:
        assert c.Close() in effects


def test_message_for_no_call_is_released_with_cause_81():
    effects = incoming().handle(received(FAST[8]), 0)  # an Alerting out of the blue
    ((release, _),) = sent(effects)
    assert release.find(q931.Cause).value == 81
    assert release.call_reference == q931.parse(FAST[8]).call_reference
    assert effects[-1] == c.Close()
