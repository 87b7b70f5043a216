"""The RAS gatekeeper (SPEC §11 table): captured requests replayed, TTL with literal now_ms."""

from __future__ import annotations

import pytest
from attrs import evolve

from vos3k.h323 import gk, ras
from vos3k.h323.h225 import Alias, AliasKind, TransportAddress
from vos3k.h323.ras import RasKind, RasMessage
from vos3k.sip.auth import SuspensionTracker
from vos3k.store.models import Phone

from .h323_captures import TSHARK, tshark_fields, write_pcap
from .replay import NDPI, ras_datagrams

T = TransportAddress
SETTINGS = gk.GkSettings("vos3k", 60, T("192.0.2.1", 1719), T("192.0.2.1", 1720))
CAPTURED = {frame: (T(*src), ras.parse(data)) for frame, (src, data) in ras_datagrams(NDPI).items()}
ENDPOINT = T("10.0.0.9", 1719)


def keeper(allowed=True, authorized=True, refuse=None, seen=None) -> gk.Gatekeeper:
    def admit(query):
        if seen is not None:
            seen.append(query)
        return refuse

    return gk.Gatekeeper(SETTINGS, lambda ip: allowed, lambda ip, port: authorized, admit)


def replies(effects) -> list[RasMessage]:
    return [e.message for e in effects if isinstance(e, gk.SendRas)]


def request(keeper_, message, source=ENDPOINT, now=0):
    # Through the real codec both ways, as the transport does.
    effects = keeper_.handle(gk.RasReceived(ras.parse(ras.encode(message)), source), now)
    for reply in replies(effects):
        assert ras.parse(ras.encode(reply)).kind is reply.kind
    return effects


RRQ = RasMessage(
    RasKind.RRQ, 7,
    aliases=(Alias(AliasKind.H323_ID, "gw-east"), Alias(AliasKind.DIALED_DIGITS, "2098")),
    ras_addresses=(ENDPOINT,), call_signal_addresses=(T("10.0.0.9", 1720),),
)  # fmt: skip


def register(keeper_, now=0) -> str:
    (rcf,) = replies(request(keeper_, RRQ, now=now))
    assert rcf.kind is RasKind.RCF
    return rcf.endpoint_identifier


# ---------------------------------------------------------------- captured requests


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (59, (RasKind.GCF, None)),  # GnuGk trace GRQ (Wireshark flags it, pycrate reads it)
        (61, (RasKind.RCF, None)),  # its RRQ
        (63, (RasKind.ARJ, "callerNotRegistered")),  # ARQ naming GnuGk's endpoint id
        (69, (RasKind.DRJ, "notRegistered")),  # a DRQ for a call vos3k never admitted
        (71, (RasKind.RRJ, "fullRegistrationRequired")),  # Tandberg keepAlive RRQ
    ],
    ids=["gnugk-grq", "gnugk-rrq", "gnugk-arq", "gnugk-drq", "tandberg-keepalive"],
)
def test_captured_requests(frame, expected):
    source, message = CAPTURED[frame]
    effects = keeper().handle(gk.RasReceived(message, source), 0)
    (reply,) = replies(effects)
    assert (reply.kind, reply.reason) == expected
    assert reply.seq == message.seq
    assert ras.parse(ras.encode(reply)) == reply


def test_captured_registration_then_arq_is_admitted():
    keeper_ = keeper()
    source, rrq = CAPTURED[61]
    (rcf,) = replies(keeper_.handle(gk.RasReceived(rrq, source), 0))
    _, arq = CAPTURED[63]
    arq = evolve(arq, endpoint_identifier=rcf.endpoint_identifier)
    (acf,) = replies(keeper_.handle(gk.RasReceived(arq, source), 10))
    assert acf.kind is RasKind.ACF
    assert acf.destination_call_signal_address == SETTINGS.signal_address  # routed via vos3k
    assert acf.call_model == "gatekeeperRouted"


def test_every_captured_datagram_is_handled_without_error():
    keeper_ = keeper()
    for source, message in CAPTURED.values():
        keeper_.handle(gk.RasReceived(message, source), 0)
    assert keeper_.dropped == 7  # GCF, RCF, ACF, IRQ x2 and RCF x2: answers, not requests


# ---------------------------------------------------------------- the SPEC §11 table


@pytest.mark.parametrize(
    ("allowed", "gk_id", "kind"),
    [(True, None, RasKind.GCF), (True, "vos3k", RasKind.GCF), (True, "other", RasKind.GRJ),
     (False, None, RasKind.GRJ)],
    ids=["§11-grq-any", "§11-grq-ours", "§11-grq-other-gk", "§11-grq-acl"],
)  # fmt: skip
def test_grq(allowed, gk_id, kind):
    grq = RasMessage(RasKind.GRQ, 1, ras_addresses=(ENDPOINT,), gatekeeper_identifier=gk_id)
    (reply,) = replies(request(keeper(allowed=allowed), grq))
    assert reply.kind is kind
    if kind is RasKind.GCF:
        assert reply.gatekeeper_identifier == "vos3k"
        assert reply.ras_addresses == (SETTINGS.ras_address,)
    else:
        assert reply.reason == "terminalExcluded"


def test_rrq_unauthorized_is_security_denial():
    (reply,) = replies(request(keeper(authorized=False), RRQ))
    assert (reply.kind, reply.reason) == (RasKind.RRJ, "securityDenial")


def test_rrq_ttl_keepalive_irq_and_expiry():
    keeper_ = keeper()
    effects = request(keeper_, RRQ, now=1000)
    (rcf,) = replies(effects)
    assert rcf.time_to_live == 60
    assert [type(e) for e in effects] == [gk.Registered, gk.SendRas]
    assert keeper_.locate("gw-east").signal_address == T("10.0.0.9", 1720)
    assert keeper_.next_deadline_ms() == 61_000
    light = evolve(RRQ, seq=8, keep_alive=True, endpoint_identifier=rcf.endpoint_identifier)
    (again,) = replies(request(keeper_, light, now=30_000))
    assert again.kind is RasKind.RCF
    assert keeper_.next_deadline_ms() == 90_000
    assert keeper_.handle(gk.Tick(), 89_999) == []
    (irq,) = replies(keeper_.handle(gk.Tick(), 90_000))  # SPEC §11: IRQ at expiry
    assert irq.kind is RasKind.IRQ
    assert keeper_.endpoints() == ()  # not routable while probed
    irr = RasMessage(RasKind.IRR, irq.seq, endpoint_identifier=rcf.endpoint_identifier,
                     ras_addresses=(ENDPOINT,))  # fmt: skip
    request(keeper_, irr, now=91_000)  # IRR renews one TTL
    assert keeper_.next_deadline_ms() == 151_000
    keeper_.handle(gk.Tick(), 151_000)
    effects = keeper_.handle(gk.Tick(), 151_000 + gk.IRR_GRACE_MS)  # silence unregisters
    assert [type(e) for e in effects] == [gk.Unregistered]
    assert keeper_.registrations == {}


def test_urq():
    keeper_ = keeper()
    endpoint_id = register(keeper_)
    urq = RasMessage(RasKind.URQ, 9, endpoint_identifier=endpoint_id,
                     call_signal_addresses=(T("10.0.0.9", 1720),))  # fmt: skip
    (ucf,) = replies(request(keeper_, urq))
    assert ucf.kind is RasKind.UCF
    (urj,) = replies(request(keeper_, urq))
    assert (urj.kind, urj.reason) == (RasKind.URJ, "notCurrentlyRegistered")


@pytest.mark.parametrize(
    ("refuse", "reason"),
    [(6, "calledPartyNotRegistered"), (18, "resourceUnavailable"), (19, "resourceUnavailable"),
     (22, "resourceUnavailable"), (8, "requestDenied"), (17, "requestDenied")],
    ids=["§11-arq-6", "§11-arq-18", "§11-arq-19", "§11-arq-22", "§11-arq-8", "§11-arq-17"],
)  # fmt: skip
def test_arq_refusals(refuse, reason):
    keeper_ = keeper(refuse=refuse)
    endpoint_id = register(keeper_)
    arq = RasMessage(RasKind.ARQ, 3, endpoint_identifier=endpoint_id,
                     destination_aliases=(Alias(AliasKind.DIALED_DIGITS, "4930123"),))  # fmt: skip
    (arj,) = replies(request(keeper_, arq))
    assert (arj.kind, arj.reason) == (RasKind.ARJ, reason)


def test_arq_admitted_then_drq_and_brq():
    seen = []
    keeper_ = keeper(seen=seen)
    endpoint_id = register(keeper_)
    arq = RasMessage(RasKind.ARQ, 3, endpoint_identifier=endpoint_id, call_identifier=b"K" * 16,
                     destination_aliases=(Alias(AliasKind.DIALED_DIGITS, "4930123"),),
                     bandwidth=640)  # fmt: skip
    (acf,) = replies(request(keeper_, arq))
    assert (acf.kind, acf.bandwidth) == (RasKind.ACF, 640)
    assert (seen[0].caller, seen[0].callee) == ("2098", "4930123")
    drq = RasMessage(RasKind.DRQ, 4, endpoint_identifier=endpoint_id, call_identifier=b"K" * 16)
    assert replies(request(keeper_, drq))[0].kind is RasKind.DCF
    brq = RasMessage(RasKind.BRQ, 5, endpoint_identifier=endpoint_id, bandwidth=320)
    (bcf,) = replies(request(keeper_, brq))
    assert (bcf.kind, bcf.bandwidth) == (RasKind.BCF, 320)


def test_arq_unregistered():
    arq = RasMessage(RasKind.ARQ, 3, endpoint_identifier="nobody")
    (arj,) = replies(request(keeper(), arq))
    assert (arj.kind, arj.reason) == (RasKind.ARJ, "callerNotRegistered")


def test_malformed_datagram_gets_no_answer():
    effects = keeper().handle(gk.RasReceived(ras.parse(b"\xff\xff\xff"), ENDPOINT), 0)
    assert replies(effects) == [] and isinstance(effects[0], gk.Dropped)


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_gatekeeper_answers_decode_in_tshark(tmp_path):
    keeper_ = keeper()
    out: list[RasMessage] = []
    grq = RasMessage(RasKind.GRQ, 1, ras_addresses=(ENDPOINT,))
    out += replies(request(keeper_, grq))
    out += replies(request(keeper_, RRQ))
    endpoint_id = out[-1].endpoint_identifier
    for message in (
        RasMessage(RasKind.ARQ, 3, endpoint_identifier=endpoint_id, call_identifier=b"K" * 16),
        RasMessage(RasKind.BRQ, 5, endpoint_identifier=endpoint_id, bandwidth=320),
        RasMessage(RasKind.DRQ, 4, endpoint_identifier=endpoint_id, call_identifier=b"K" * 16),
        RasMessage(RasKind.URQ, 9, endpoint_identifier=endpoint_id),
        RasMessage(RasKind.URQ, 10, endpoint_identifier=endpoint_id),
        evolve(RRQ, seq=11, keep_alive=True, endpoint_identifier="x"),
    ):
        out += replies(request(keeper_, message))
    out += replies(request(keeper(allowed=False), grq))
    out += replies(request(keeper(authorized=False), RRQ))
    keeper_ = keeper()
    register(keeper_)
    out += replies(keeper_.handle(gk.Tick(), 60_000))  # IRQ
    path = tmp_path / "gk.pcap"
    write_pcap(path, [ras.encode(m) for m in out], port=1719, udp=True)
    rows = tshark_fields(path, ["_ws.malformed", "_ws.expert.severity", "h225.RasMessage"])
    kinds = list(RasKind)
    assert len(rows) == len(out) == 11
    for message, row in zip(out, rows, strict=True):
        assert row[:2] == ["", ""], (message.kind, row)
        assert int(row[2]) == kinds.index(message.kind)


# ---------------------------------------------------------------- phones: H.235 tokens

NOW_S = 1_700_000_000
NOW = NOW_S * 1000
PHONE_SOURCE = T("10.0.0.20", 1719)
PHONES = {
    "2001": Phone("2001", "secret", "acme"),
    "2002": Phone("2002", "secret", "acme", enabled=False),
}


def phone_keeper(tracker=None, window_s=gk.TOKEN_WINDOW_S, seen=None) -> gk.Gatekeeper:
    def admit(query):
        if seen is not None:
            seen.append(query)

    return gk.Gatekeeper(
        evolve(SETTINGS, auth_max_retry=3, auth_suspend_s=60, token_window_s=window_s),
        lambda ip: True, lambda ip, port: False, admit,
        password_of=gk.phone_passwords(lambda: PHONES), suspensions=tracker,
    )  # fmt: skip


def phone_rrq(seq=1, alias="2001", password="secret", ts=NOW_S, token="md5", aliases=None):
    own = aliases if aliases is not None else (Alias(AliasKind.DIALED_DIGITS, alias),)
    tokens = {}
    if token == "md5":
        digest = ras.pwd_hash_digest(alias, password, ts)
        tokens["crypto_tokens"] = (ras.PwdHash(Alias(AliasKind.DIALED_DIGITS, alias), ts, digest),)
    elif token == "cat":
        challenge = ras.cat_challenge(seq, password, ts)
        tokens["clear_tokens"] = (ras.CatToken(alias + "\x00", ts, seq, challenge),)
    return RasMessage(
        RasKind.RRQ, seq, aliases=own, ras_addresses=(PHONE_SOURCE,),
        call_signal_addresses=(T("10.0.0.20", 1720),), **tokens,
    )  # fmt: skip


def answer(effects) -> tuple[RasKind, str | None]:
    (reply,) = replies(effects)
    return reply.kind, reply.reason


DENIED = (RasKind.RRJ, "securityDenial")
CONFIRMED = (RasKind.RCF, None)


@pytest.mark.parametrize(
    ("rrq", "now", "expected"),
    [
        (phone_rrq(), NOW, CONFIRMED),
        (phone_rrq(token="cat"), NOW, CONFIRMED),
        (phone_rrq(aliases=(Alias(AliasKind.H323_ID, "2001"),)), NOW, CONFIRMED),
        (phone_rrq(password="wrong"), NOW, DENIED),
        (phone_rrq(password="wrong", token="cat"), NOW, DENIED),
        (phone_rrq(ts=NOW_S - 300), NOW, CONFIRMED),
        (phone_rrq(ts=NOW_S - 301), NOW, DENIED),
        (phone_rrq(ts=NOW_S + 301), NOW, DENIED),
        (phone_rrq(alias="2999"), NOW, DENIED),
        (phone_rrq(alias="2002"), NOW, DENIED),
        (phone_rrq(aliases=(Alias(AliasKind.DIALED_DIGITS, "2003"),)), NOW, DENIED),
        (phone_rrq(token=None), NOW, DENIED),
    ],
    ids=[
        "spec11-md5-valid", "spec11-cat-valid", "spec11-alias-as-h323-id",
        "spec11-md5-wrong-password", "spec11-cat-wrong-password",
        "spec11-timestamp-at-window", "spec11-timestamp-stale", "spec11-timestamp-future",
        "spec11-unknown-alias", "spec11-disabled-phone", "gnugk-checkid-alias-not-own",
        "spec11-no-token-not-gateway",
    ],
)  # fmt: skip
def test_phone_rrq(rrq, now, expected):
    keeper_ = phone_keeper()
    effects = request(keeper_, rrq, source=PHONE_SOURCE, now=now)
    assert answer(effects) == expected
    registered = [e.endpoint for e in effects if isinstance(e, gk.Registered)]
    assert [e.phone for e in registered] == (["2001"] if expected == CONFIRMED else [])
    refused = [e for e in effects if isinstance(e, gk.AuthFailed)]
    assert len(refused) == (expected == DENIED and rrq.crypto_tokens + rrq.clear_tokens != ())


def test_unknown_alias_answer_equals_wrong_password_answer():
    # SPEC §10 (no enumeration): the same RRJ, byte for byte.
    unknown = request(phone_keeper(), phone_rrq(alias="2999"), source=PHONE_SOURCE, now=NOW)
    wrong = request(phone_keeper(), phone_rrq(password="x"), source=PHONE_SOURCE, now=NOW)
    assert [ras.encode(m) for m in replies(unknown)] == [ras.encode(m) for m in replies(wrong)]


@pytest.mark.parametrize("token", ["md5", "cat"], ids=["h235-md5-replay", "h235-cat-replay"])
def test_replayed_token_is_refused_from_elsewhere(token):
    keeper_ = phone_keeper()
    first = phone_rrq(seq=9, token=token)
    assert answer(request(keeper_, first, source=PHONE_SOURCE, now=NOW)) == CONFIRMED
    # H.225.0 RAS retry (same requestSeqNum), or a new RRQ in the same second: from the
    # socket that first sent the token it can only bind the phone where it already is.
    assert answer(request(keeper_, first, source=PHONE_SOURCE, now=NOW + 3000)) == CONFIRMED
    again = evolve(first, seq=10)
    assert answer(request(keeper_, again, source=PHONE_SOURCE, now=NOW + 4000)) == CONFIRMED
    # The same token from any other socket is a replay (it would move the phone's calls).
    for elsewhere in (T("10.0.0.66", 1719), T("10.0.0.20", 1720)):
        effects = request(keeper_, evolve(first, seq=11), source=elsewhere, now=NOW + 4000)
        assert answer(effects) == DENIED
        assert [e.reason for e in effects if isinstance(e, gk.AuthFailed)] == ["replayed token"]
    # A fresh token (a new timestamp) registers from elsewhere.
    fresh = phone_rrq(seq=12, ts=NOW_S + 5, token=token)
    elsewhere = T("10.0.0.66", 1719)
    assert answer(request(keeper_, fresh, source=elsewhere, now=NOW + 5000)) == CONFIRMED


def test_replay_memory_is_forgotten_after_the_window():
    keeper_ = phone_keeper(window_s=10)
    request(keeper_, phone_rrq(seq=1), source=PHONE_SOURCE, now=NOW)
    assert len(keeper_.seen_tokens) == 1
    # After the window the token is stale anyway; its memory may be reused.
    late = request(keeper_, phone_rrq(seq=2), source=PHONE_SOURCE, now=NOW + 11_000)
    assert answer(late) == DENIED
    assert [e.reason for e in late if isinstance(e, gk.AuthFailed)] == [
        "timestamp outside the window"
    ]


def test_failed_tokens_suspend_like_sip_digest():
    tracker = SuspensionTracker()
    keeper_ = phone_keeper(tracker)
    for seq in (1, 2):
        effects = request(keeper_, phone_rrq(seq, password="x"), source=PHONE_SOURCE, now=NOW)
        assert answer(effects) == DENIED
    third = request(keeper_, phone_rrq(3, password="x"), source=PHONE_SOURCE, now=NOW)
    (failed,) = [e for e in third if isinstance(e, gk.AuthFailed)]
    assert {s.value for s in failed.new_suspensions} == {"10.0.0.20", "2001"}  # SPEC §10
    # Suspended: even the right password is refused, and not counted again.
    right = request(keeper_, phone_rrq(4, ts=NOW_S + 1), source=PHONE_SOURCE, now=NOW + 1000)
    assert answer(right) == DENIED
    assert [e.reason for e in right if isinstance(e, gk.AuthFailed)] == ["suspended"]
    assert tracker.is_suspended("user", "2001", NOW + 1000)
    # SS_AUTHENTICATION_FAILED_SUSPEND (60 s here) later it registers.
    later = NOW + 61_000
    effects = request(keeper_, phone_rrq(5, ts=later // 1000), source=PHONE_SOURCE, now=later)
    assert answer(effects) == CONFIRMED


def test_success_clears_the_users_failures():
    tracker = SuspensionTracker()
    keeper_ = phone_keeper(tracker)
    for seq in (1, 2):
        request(keeper_, phone_rrq(seq, password="x"), source=PHONE_SOURCE, now=NOW)
    request(keeper_, phone_rrq(3), source=PHONE_SOURCE, now=NOW)
    request(keeper_, phone_rrq(4, password="x"), source=T("10.0.0.21", 1719), now=NOW)
    # The user's count restarted at the success: one more failure does not suspend it.
    assert not tracker.is_suspended("user", "2001", NOW)


def test_mapping_gateway_without_tokens_still_registers():
    (rcf,) = replies(request(keeper(authorized=True), RRQ))
    assert rcf.kind is RasKind.RCF and rcf.endpoint_identifier


def test_registered_phone_arq_and_calls_by_address():
    seen: list[gk.AdmissionQuery] = []
    keeper_ = phone_keeper(seen=seen)
    (rcf,) = replies(request(keeper_, phone_rrq(), source=PHONE_SOURCE, now=NOW))
    arq = RasMessage(
        RasKind.ARQ, 2, endpoint_identifier=rcf.endpoint_identifier,
        destination_aliases=(Alias(AliasKind.DIALED_DIGITS, "4930123456"),),
        call_identifier=bytes(range(16)),
    )  # fmt: skip
    assert answer(request(keeper_, arq, source=PHONE_SOURCE, now=NOW + 1)) == (RasKind.ACF, None)
    (query,) = seen
    assert (query.endpoint.phone, query.caller, query.callee) == ("2001", "2001", "4930123456")
    # SPEC §3 step 3 "RAS phones by address": the Setup's source host names the phone.
    assert keeper_.phone_at("10.0.0.20") == "2001"
    assert keeper_.phone_at("10.0.0.20", "2001") == "2001"
    assert keeper_.phone_at("10.0.0.99") is None


def test_phone_at_two_phones_behind_one_address():
    phones = {**PHONES, "2003": Phone("2003", "pw3", "acme")}
    keeper_ = phone_keeper()
    keeper_.password_of = gk.phone_passwords(lambda: phones)
    request(keeper_, phone_rrq(1), source=PHONE_SOURCE, now=NOW)
    other = T("10.0.0.20", 1730)
    request(keeper_, phone_rrq(2, alias="2003", password="pw3"), source=other, now=NOW)
    assert keeper_.phone_at("10.0.0.20", "2003") == "2003"
    assert keeper_.phone_at("10.0.0.20", "2001") == "2001"
    assert keeper_.phone_at("10.0.0.20", "") is None  # ambiguous: no phone is assumed
