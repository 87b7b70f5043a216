"""Tests for vos3k.sip.registrar: RFC 3261 §10.3 REGISTER processing and the binding table."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vos3k.sip.registrar import (
    Binding,
    ContactSpec,
    RegisterResult,
    Registrar,
    contact_key,
)

T0 = 1_700_000_000_000
AOR = "1001"
A = "sip:1001@192.0.2.1:5060"
B = "sip:1001@192.0.2.2:5062;transport=tcp"


def reg(
    r: Registrar,
    contacts=((A, None),),
    *,
    expires: str | None = None,
    call_id: str = "call-1",
    cseq: int = 1,
    at: int = 0,
    min_s: int = 60,
    max_s: int = 3600,
    aor: str = AOR,
    source: str = "",
) -> RegisterResult:
    return r.register(
        aor=aor,
        contacts=[ContactSpec(uri, exp) for uri, exp in contacts],
        expires_header=expires,
        call_id=call_id,
        cseq=cseq,
        now_ms=T0 + at,
        min_expires_s=min_s,
        max_expires_s=max_s,
        source=source,
    )


def contacts_of(result: RegisterResult) -> list[tuple[str, str]]:
    return [(n, v) for n, v in result.headers if n == "Contact"]


# ---------------------------------------------------------------------------
# One REGISTER on an empty table: status, Contact headers of the reply.

SINGLE = [
    pytest.param({}, 200, [f"<{A}>;expires=600"], id="SPEC2-absent-600s"),
    pytest.param({"expires": "1800"}, 200, [f"<{A}>;expires=1800"], id="RFC3261-10.2.1.1-header"),
    pytest.param(
        {"expires": "1800", "contacts": ((A, "120"),)},
        200,
        [f"<{A}>;expires=120"],
        id="RFC3261-10.2.1.1-param-beats-header",
    ),
    pytest.param({"expires": "7200"}, 200, [f"<{A}>;expires=3600"], id="SPEC2-cut-to-max"),
    pytest.param(
        {"expires": "99999999999999"}, 200, [f"<{A}>;expires=3600"], id="RFC3261-20.19-huge"
    ),
    pytest.param({"expires": "60"}, 200, [f"<{A}>;expires=60"], id="SPEC2-equal-min-ok"),
    pytest.param({"expires": " 90 "}, 200, [f"<{A}>;expires=90"], id="expires-with-spaces"),
    pytest.param({"expires": "59"}, 423, [], id="SPEC2-below-min-423"),
    pytest.param({"expires": "1"}, 423, [], id="RFC3261-10.3-7-423"),
    pytest.param({"expires": "0"}, 200, [], id="RFC3261-10.3-7-zero-unknown-ignored"),
    pytest.param({"min_s": 900}, 200, [f"<{A}>;expires=900"], id="SPEC9-default-raised-to-min"),
    pytest.param({"max_s": 300}, 200, [f"<{A}>;expires=300"], id="SPEC9-default-cut-to-max"),
    pytest.param({"expires": "abc"}, 400, [], id="bad-expires-text"),
    pytest.param({"expires": "-1"}, 400, [], id="bad-expires-negative"),
    pytest.param({"expires": "1.5"}, 400, [], id="bad-expires-fraction"),
    pytest.param({"expires": ""}, 400, [], id="bad-expires-empty"),
    pytest.param({"expires": "٣٦٠٠"}, 400, [], id="bad-expires-non-ascii-digits"),
    pytest.param({"contacts": ((A, "x"),)}, 400, [], id="bad-contact-expires"),
    pytest.param(
        {"contacts": ((A, None), (B, "120"))},
        200,
        [f"<{A}>;expires=600", f"<{B}>;expires=120"],
        id="RFC3261-10.2.1.2-multiple-contacts",
    ),
    pytest.param(
        {"contacts": ((A, "3000"), (B, "30"))}, 423, [], id="RFC3261-10.3-423-any-contact"
    ),
    pytest.param(
        {"contacts": ((f"<{A}>", None),)},
        200,
        [f"<{A}>;expires=600"],
        id="angle-brackets-stripped",
    ),
    pytest.param({"contacts": ()}, 200, [], id="RFC3261-10.2.3-fetch-empty"),
    pytest.param(
        {"contacts": (("*", None),), "expires": "0"}, 200, [], id="RFC3261-10.2.2-wildcard-empty"
    ),
    pytest.param({"contacts": (("*", None),)}, 400, [], id="RFC3261-10.3-7-wildcard-no-expires"),
    pytest.param(
        {"contacts": (("*", None),), "expires": "60"},
        400,
        [],
        id="RFC3261-10.3-7-wildcard-nonzero",
    ),
    pytest.param(
        {"contacts": (("*", None), (A, None)), "expires": "0"},
        400,
        [],
        id="RFC3261-10.3-7-wildcard-with-other",
    ),
    pytest.param(
        {"contacts": (("*", "0"),), "expires": "0"}, 400, [], id="wildcard-with-expires-param"
    ),
]


@pytest.mark.parametrize(("kwargs", "status", "contacts"), SINGLE)
def test_single_register(kwargs, status, contacts):
    r = Registrar()
    result = reg(r, **kwargs)
    assert result.status == status
    assert [v for _, v in contacts_of(result)] == contacts
    assert [b.contact for b in r.bindings(AOR, T0)] == [c.split(">")[0][1:] for c in contacts]
    if status == 423:
        assert ("Min-Expires", str(kwargs.get("min_s", 60))) in result.headers
        assert result.phrase == "Interval Too Brief"
    if status != 200:
        assert result.changed is False
        assert not any(n == "Date" for n, _ in result.headers)
    else:
        assert ("Date", "Tue, 14 Nov 2023 22:13:20 GMT") in result.headers


# ---------------------------------------------------------------------------
# Sequences: earlier REGISTERs, then one under test.

SEQUENCES = [
    pytest.param(
        [{"cseq": 1}],
        {"cseq": 2, "expires": "1200", "at": 10_000},
        200,
        [(A, 1200)],
        id="RFC3261-10.3-7-refresh-higher-cseq",
    ),
    pytest.param(
        [{"cseq": 5}],
        {"cseq": 4, "expires": "1200", "at": 10_000},
        500,
        [(A, 590)],
        id="RFC3261-10.3-7-same-callid-lower-cseq",
    ),
    pytest.param(
        [{"cseq": 5}],
        {"cseq": 5, "expires": "1200", "at": 10_000},
        500,
        [(A, 590)],
        id="RFC3261-10.3-7-same-callid-equal-cseq",
    ),
    pytest.param(
        [{"cseq": 5}],
        {"cseq": 1, "call_id": "call-2", "expires": "1200", "at": 10_000},
        200,
        [(A, 1200)],
        id="RFC3261-10.3-7-new-callid-any-cseq",
    ),
    pytest.param(
        [{"contacts": ((A, None), (B, None))}],
        {"cseq": 2, "contacts": ((A, "0"),), "at": 1000},
        200,
        [(B, 599)],
        id="RFC3261-10.2.2-unregister-one",
    ),
    pytest.param(
        [{"contacts": ((A, None), (B, None))}],
        {"cseq": 2, "contacts": ((A, "0"), (B, "0")), "expires": "1800", "at": 1000},
        200,
        [],
        id="RFC3261-10.2.2-unregister-both",
    ),
    pytest.param(
        [{"contacts": ((A, None), (B, None))}],
        {"cseq": 2, "contacts": (("*", None),), "expires": "0", "at": 1000},
        200,
        [],
        id="RFC3261-10.2.2-wildcard-removes-all",
    ),
    pytest.param(
        [{"contacts": ((A, None), (B, None)), "cseq": 3}],
        {"cseq": 3, "contacts": (("*", None),), "expires": "0", "at": 1000},
        500,
        [(A, 599), (B, 599)],
        id="RFC3261-10.3-7-wildcard-stale-cseq",
    ),
    pytest.param(
        [{"contacts": ((A, None), (B, None)), "cseq": 3}],
        {"cseq": 1, "call_id": "other", "contacts": (("*", None),), "expires": "0"},
        200,
        [],
        id="RFC3261-10.3-7-wildcard-other-callid",
    ),
    pytest.param(
        [{"cseq": 7}],
        {"cseq": 8, "contacts": ((B, None), (A, "30"))},
        423,
        [(A, 600)],
        id="RFC3261-10.3-423-is-atomic",
    ),
    pytest.param(
        [{"cseq": 7, "contacts": ((B, None),)}, {"call_id": "c2", "contacts": ((A, None),)}],
        {"call_id": "c2", "cseq": 1, "contacts": ((A, "0"), (B, "0"))},
        500,
        [(A, 600), (B, 600)],
        id="RFC3261-10.3-7-all-or-nothing",
    ),
    pytest.param(
        [{"expires": "120"}],
        {"cseq": 1, "call_id": "late", "contacts": (), "at": 100_500},
        200,
        [(A, 20)],
        id="RFC3261-10.3-8-remaining-rounded-up",
    ),
    pytest.param(
        [{"expires": "60"}],
        {"cseq": 1, "call_id": "late", "contacts": (), "at": 60_000},
        200,
        [],
        id="RFC3261-10.2.1-expired-not-listed",
    ),
    pytest.param(
        [{"contacts": ((A, None),)}],
        {"cseq": 2, "contacts": (("<SIP:1001@192.0.2.1:5060>", "0"),)},
        200,
        [],
        id="RFC3261-19.1.4-scheme-host-case-insensitive",
    ),
    pytest.param(
        [{"contacts": (("sip:1001@h;transport=udp;lr", None),)}],
        {"cseq": 2, "contacts": (("sip:1001@H;LR;Transport=UDP", "0"),)},
        200,
        [],
        id="RFC3261-19.1.4-params-any-order-case",
    ),
    pytest.param(
        [{"contacts": (("sip:alice@h", None),)}],
        {"cseq": 2, "contacts": (("sip:ALICE@h", "0"),)},
        200,
        [("sip:alice@h", 600)],
        id="RFC3261-19.1.4-user-case-sensitive",
    ),
    pytest.param(
        [{"contacts": (("sip:1001@h", None),)}],
        {"cseq": 2, "contacts": (("sip:1001@h:5060", "0"),)},
        200,
        [("sip:1001@h", 600)],
        id="RFC3261-19.1.4-default-port-differs",
    ),
    pytest.param(
        [{"aor": "1002"}],
        {"cseq": 1, "contacts": ()},
        200,
        [],
        id="other-aor-separate",
    ),
]


@pytest.mark.parametrize(("before", "request_", "status", "after"), SEQUENCES)
def test_sequences(before, request_, status, after):
    r = Registrar()
    for step in before:
        assert reg(r, **step).status == 200
    result = reg(r, **request_)
    assert result.status == status
    at = T0 + request_.get("at", 0)
    got = [(b.contact, b.remaining_s(at)) for b in r.bindings(AOR, at)]
    assert sorted(got) == sorted(after)
    assert sorted((b.contact, b.remaining_s(at)) for b in result.bindings) == sorted(after)
    if status == 200:
        listed = [v for _, v in contacts_of(result)]
        assert sorted(listed) == sorted(f"<{c}>;expires={s}" for c, s in after)


def test_changed_flag():
    r = Registrar()
    assert reg(r).changed is True
    assert reg(r, contacts=(), cseq=2).changed is False  # a fetch changes nothing
    assert reg(r, cseq=3, at=1000).changed is True  # refresh moves the expiry
    assert reg(r, expires="0", cseq=4, contacts=((B, None),)).changed is False
    assert reg(r, expires="59", cseq=5).changed is False  # 423


def test_source_and_call_id_are_recorded():
    r = Registrar()
    reg(r, call_id="abc@ua", cseq=17, source="udp:192.0.2.1:5060", at=5)
    (binding,) = r.bindings(AOR, T0 + 5)
    assert binding == Binding(
        aor=AOR,
        contact=A,
        expires_at_ms=T0 + 5 + 600_000,
        call_id="abc@ua",
        cseq=17,
        registered_ms=T0 + 5,
        source="udp:192.0.2.1:5060",
    )


# ---------------------------------------------------------------------------
# Lookup, expiry, bounds


def test_lookup_newest_binding():
    r = Registrar()
    assert r.lookup(AOR, T0) is None
    reg(r, contacts=((A, None),), call_id="a", at=0)
    reg(r, contacts=((B, None),), call_id="b", at=1000)
    assert r.lookup(AOR, T0 + 1000).contact == B
    reg(r, contacts=((A, None),), call_id="a", cseq=2, at=2000)  # A refreshed: newest again
    assert r.lookup(AOR, T0 + 2000).contact == A
    assert r.lookup("9999", T0 + 2000) is None


def test_lookup_skips_expired_newest():
    r = Registrar()
    reg(r, contacts=((A, "3600"),), call_id="a", at=0)
    reg(r, contacts=((B, "60"),), call_id="b", at=1000)
    assert r.lookup(AOR, T0 + 60_999).contact == B
    assert r.lookup(AOR, T0 + 61_000).contact == A


@pytest.mark.parametrize(
    ("now_offset", "purged"),
    [
        pytest.param(59_999, [], id="RFC3261-10.2.1-before-expiry"),
        pytest.param(60_000, [A], id="RFC3261-10.2.1-at-expiry"),
        pytest.param(600_000, [A, B], id="RFC3261-10.2.1-all-expired"),
    ],
)
def test_purge(now_offset, purged):
    r = Registrar()
    reg(r, contacts=((A, "60"), (B, "600")))
    assert r.next_deadline_ms() == T0 + 60_000
    removed = r.purge(T0 + now_offset)
    assert [b.contact for b in removed] == purged
    assert len(r.bindings(AOR, T0)) == 2 - len(purged)


def test_next_deadline_follows_refresh_and_removal():
    r = Registrar()
    assert r.next_deadline_ms() is None
    reg(r, contacts=((A, "60"),))
    reg(r, contacts=((A, "600"),), cseq=2, at=1000)
    assert r.next_deadline_ms() == T0 + 601_000
    assert r.purge(T0 + 60_000) == []  # the superseded 60 s entry removes nothing
    reg(r, contacts=((A, "0"),), cseq=3, at=2000)
    assert r.next_deadline_ms() is None


def test_refresh_heap_stays_bounded():
    r = Registrar()
    for i in range(1000):
        reg(r, cseq=i + 1, at=i * 1000)
    assert len(r._expiry_heap) <= 4 * 1 + 64 + 1
    assert r.next_deadline_ms() == T0 + 999_000 + 600_000


def test_max_bindings_per_aor_evicts_least_recently_refreshed():
    r = Registrar(max_bindings_per_aor=3)
    uris = [f"sip:1001@192.0.2.1:{5060 + i}" for i in range(5)]
    for i, uri in enumerate(uris):
        result = reg(r, contacts=((uri, None),), call_id=f"c{i}", at=i * 1000)
        assert result.status == 200
    assert [b.contact for b in r.bindings(AOR, T0 + 5000)] == uris[2:]


def test_remove_aor():
    r = Registrar()
    reg(r, contacts=((A, None), (B, None)))
    assert {b.contact for b in r.remove_aor(AOR)} == {A, B}
    assert r.lookup(AOR, T0) is None
    assert r.remove_aor(AOR) == ()


# ---------------------------------------------------------------------------
# Export / load (persistence across a restart is store/'s; the values are ours)


def test_export_load_round_trip_through_plain_dicts():
    r = Registrar()
    reg(r, contacts=((A, "60"), (B, "3600")), source="tcp:192.0.2.2:40000")
    reg(r, aor="1002", contacts=(("sip:1002@192.0.2.9", None),), call_id="x", at=500)
    exported = r.export(T0 + 1000)
    assert len(exported) == 3
    rows = [attrs.asdict(b) for b in exported]  # what store/ writes
    restarted = Registrar()
    assert restarted.load([Binding(**row) for row in rows], T0 + 120_000) == 2  # A expired
    assert restarted.lookup(AOR, T0 + 120_000) == r.lookup(AOR, T0 + 120_000)
    assert restarted.lookup("1002", T0 + 120_000).call_id == "x"
    assert restarted.next_deadline_ms() == T0 + 600_500
    # Ordering survives: an out-of-order REGISTER after the restart still fails.
    assert reg(restarted, contacts=((B, None),), cseq=1, at=130_000).status == 500


def test_load_keeps_later_registration():
    newer = Binding(AOR, A, T0 + 900_000, "n", 2, T0 + 2000)
    older = Binding(AOR, f"<{A}>", T0 + 800_000, "o", 9, T0 + 1000)
    r = Registrar()
    assert r.load([newer, older], T0 + 3000) == 1
    assert r.bindings(AOR, T0 + 3000) == (newer,)


def test_export_skips_expired():
    r = Registrar()
    reg(r, contacts=((A, "60"),))
    assert r.export(T0 + 59_999) != ()
    assert r.export(T0 + 60_000) == ()


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        pytest.param("sip:a@H.com", "SIP:a@h.COM", True, id="RFC3261-19.1.4-case"),
        pytest.param("<sip:a@h>", "sip:a@h", True, id="brackets"),
        pytest.param("sip:a@h;x=1;y=2", "sip:a@h;y=2;x=1", True, id="RFC3261-19.1.4-param-order"),
        pytest.param("sip:a@h", "sip:A@h", False, id="RFC3261-19.1.4-user-case"),
        pytest.param("sip:a@h", "sips:a@h", False, id="RFC3261-19.1.4-scheme"),
        pytest.param("sip:a@h", "sip:a@h:5060", False, id="RFC3261-19.1.4-explicit-port"),
        pytest.param("sip:a@h?X=1", "sip:a@h?X=2", False, id="headers"),
    ],
)
def test_contact_key(left, right, same):
    assert (contact_key(left) == contact_key(right)) is same


@given(st.text(max_size=80))
def test_contact_key_total(text):
    assert isinstance(contact_key(text), str)
