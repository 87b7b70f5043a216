"""Every message vos3k's H.323 encoders build is decoded cleanly by tshark (SPEC §11)."""

from __future__ import annotations

import pytest

from vos3k.h323 import h225, q931, ras, tpkt
from vos3k.h323.h225 import Body

from .h323_captures import TSHARK, tshark_fields, write_pcap
from .test_h225 import BUILT as UUIES
from .test_ras import BUILT as RAS_MESSAGES

pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")

MESSAGE_TYPE = {
    Body.SETUP: q931.MessageType.SETUP,
    Body.CALL_PROCEEDING: q931.MessageType.CALL_PROCEEDING,
    Body.ALERTING: q931.MessageType.ALERTING,
    Body.PROGRESS: q931.MessageType.PROGRESS,
    Body.CONNECT: q931.MessageType.CONNECT,
    Body.RELEASE_COMPLETE: q931.MessageType.RELEASE_COMPLETE,
    Body.FACILITY: q931.MessageType.FACILITY,
    Body.EMPTY: q931.MessageType.FACILITY,
    Body.INFORMATION: q931.MessageType.INFORMATION,
    Body.STATUS: q931.MessageType.STATUS,
    Body.NOTIFY: q931.MessageType.NOTIFY,
}
# Q.931 IEs per message, as vos3k's call layer will send them.
EXTRA_IES = {
    Body.SETUP: (
        q931.BearerCapability(),
        q931.Display("vos3k"),
        q931.CallingPartyNumber("8613800138000", presentation=0, screening=1),
        q931.CalledPartyNumber("4930123456"),
    ),
    Body.PROGRESS: (q931.ProgressIndicator(8),),
    Body.RELEASE_COMPLETE: (q931.Cause(17),),
    Body.STATUS: (q931.Cause(30), q931.CallState(10)),
}


def _frame(index: int, info: h225.UserInformation) -> bytes:
    ies = (*EXTRA_IES.get(info.body, ()), q931.UserUser(h225.encode_user_information(info)))
    message = q931.Message(MESSAGE_TYPE[info.body], 100 + index, info.body is not Body.SETUP, ies)
    return tpkt.encode(q931.encode(message))


def test_call_signalling_decodes_in_tshark(tmp_path):
    path = tmp_path / "built-h225.pcap"
    write_pcap(path, [_frame(i, info) for i, info in enumerate(UUIES)], port=1720)
    fields = [
        "_ws.malformed", "_ws.expert.severity", "q931.message_type", "q931.call_ref",
        "h225.h323_message_body", "h225.setup_element", "h225.fastStart",
        "h225.h245Tunnelling", "h225.guid", "q931.cause_value", "h245.audioData",
    ]  # fmt: skip
    rows = tshark_fields(path, fields)
    assert len(rows) == len(UUIES)
    bodies = list(Body)
    for info, row in zip(UUIES, rows, strict=True):
        got = dict(zip(fields, row, strict=True))
        assert got["_ws.malformed"] == "", (info.body, got)
        assert got["_ws.expert.severity"] == "", (info.body, got)
        assert int(got["q931.message_type"], 0) == MESSAGE_TYPE[info.body]
        assert int(got["h225.h323_message_body"]) == bodies.index(info.body)
        assert got["h225.h245Tunnelling"] == ("1" if info.h245_tunnelling else "0")
        assert (got["h225.setup_element"] != "") == (info.body is Body.SETUP)
        if info.fast_start:
            assert int(got["h225.fastStart"]) == len(info.fast_start)
            assert len(got["h245.audioData"].split(",")) == len(info.fast_start)
        else:
            assert got["h225.fastStart"] == ""
        if info.call_identifier is not None:
            assert info.call_identifier.hex() in got["h225.guid"].replace("-", "")
    release = dict(zip(fields, rows[6], strict=True))
    assert release["q931.cause_value"] == "17"


def test_fast_start_codecs_decode_in_tshark(tmp_path):
    path = tmp_path / "built-setup.pcap"
    write_pcap(path, [_frame(0, UUIES[0])], port=1720)
    fields = ["h245.g711Alaw64k", "h245.g711Ulaw64k", "h245.g729", "h245.g7231_element",
              "h245.tsapIdentifier"]  # fmt: skip
    (row,) = tshark_fields(path, fields)
    got = dict(zip(fields, row, strict=True))
    assert got["h245.g711Alaw64k"] == "20,20"
    assert got["h245.g711Ulaw64k"] == "20,20"
    assert got["h245.g729"] == "2,2"
    assert got["h245.g7231_element"] != ""
    assert "40000" in got["h245.tsapIdentifier"].split(",")


def test_ras_decodes_in_tshark(tmp_path):
    path = tmp_path / "built-ras.pcap"
    write_pcap(path, [ras.encode(m) for m in RAS_MESSAGES], port=1719, udp=True)
    fields = ["_ws.malformed", "_ws.expert.severity", "h225.RasMessage", "h225.requestSeqNum",
              "h225.keepAlive"]  # fmt: skip
    rows = tshark_fields(path, fields)
    assert len(rows) == len(RAS_MESSAGES)
    kinds = list(ras.RasKind)
    for message, row in zip(RAS_MESSAGES, rows, strict=True):
        got = dict(zip(fields, row, strict=True))
        assert got["_ws.malformed"] == "", (message.kind, got)
        assert got["_ws.expert.severity"] == "", (message.kind, got)
        assert int(got["h225.RasMessage"]) == kinds.index(message.kind)
        assert int(got["h225.requestSeqNum"]) == message.seq
        if message.kind is ras.RasKind.RRQ:
            assert got["h225.keepAlive"] == ("1" if message.keep_alive else "0")


def test_ras_kind_order_matches_the_asn1_choice():
    # tshark reports the CHOICE index; RasKind must list alternatives in ASN.1 order.
    choice = h225.asn1().h225.RasMessage
    assert [k.value for k in ras.RasKind] == list(choice._cont.keys())
    body = h225.asn1().h225.H323_UU_PDU._cont["h323-message-body"]
    assert [b.value for b in Body] == list(body._cont.keys())
