"""The SIP endpoint (vos3k/sip/endpoint.py): OPTIONS, REGISTER with digest, dispatch, timers."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from twisted.internet.task import Clock

from vos3k.params import Actor, LiveParams
from vos3k.sip.auth import Algorithm, digest_response, parse_auth_header
from vos3k.sip.endpoint import ALLOW, SipEndpoint, format_source, parse_source
from vos3k.sip.message import Request, Response, build_response, parse
from vos3k.sip.transaction import Address
from vos3k.store.db import open_store
from vos3k.store.models import Account, Phone

OPS = Actor("ops", "test")
PHONE_ADDR = Address("UDP", "192.0.2.10", 5062)
START_S = 1_700_000_000
_branches = itertools.count(1)


class FakeTransport:
    def __init__(self):
        self.sent: list[tuple[Request | Response, Address, object]] = []

    def send(self, message, destination, on_error=None):
        self.sent.append((message, destination, on_error))

    def local_address(self, destination):
        return Address(destination.transport, "127.0.0.1", 5060)

    def responses(self):
        return [m for m, _d, _e in self.sent if isinstance(m, Response)]


class Calls:
    """A call layer that records what the endpoint hands it."""

    def __init__(self):
        self.seen: list[tuple] = []

    def request(self, request, key, source, now_ms):
        self.seen.append(("request", request.method, key))

    def cancelled(self, invite_key, cancel, now_ms):
        self.seen.append(("cancelled", invite_key))

    def response(self, response, key, source, now_ms):
        self.seen.append(("response", response.status, key))

    def timeout(self, key, request, now_ms):
        self.seen.append(("timeout", request.method, now_ms))

    def transport_error(self, key, request, now_ms):
        self.seen.append(("transport_error", request.method))


@pytest.fixture
def store():
    s = open_store(None)
    s.accounts.add(Account("acme", balance=Decimal("10")), OPS)
    s.phones.add(Phone("1001", "s3cret", "acme"), OPS)
    s.phones.add(Phone("1002", "other", "acme", enabled=False), OPS)
    yield s
    s.close()


def make_endpoint(store, clock=None):
    clock = clock or Clock()
    if clock.seconds() == 0:
        clock.advance(START_S)
    params = LiveParams(store.params)
    endpoint = SipEndpoint(
        clock,
        params,
        phone_of=store.phones.get,
        registrations=store.registrations,
        own_hosts=("127.0.0.1", "vos3k.test"),
        secret=b"k" * 32,
    )
    endpoint.transport = FakeTransport()
    endpoint.startService()
    return endpoint, clock


@pytest.fixture
def rig(store):
    endpoint, clock = make_endpoint(store)
    yield endpoint, clock, endpoint.transport
    endpoint.stopService()


def request(
    method,
    *,
    user="1001",
    to_user=None,
    call_id="c1",
    cseq=1,
    extra=(),
    uri="sip:vos3k.test",
    branch=None,
    via_host="192.0.2.10:5062",
) -> Request:
    to_user = user if to_user is None else to_user
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP {via_host};branch={branch or f'z9hG4bK{next(_branches)}'}",
        "Max-Forwards: 70",
        f"From: <sip:{user}@vos3k.test>;tag=f1",
        f"To: <sip:{to_user}@vos3k.test>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        *extra,
        "Content-Length: 0",
    ]
    message = parse(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def last_response(transport) -> Response:
    return transport.responses()[-1]


def challenge_params(response: Response, name="WWW-Authenticate") -> dict[str, str]:
    for value in response.headers_named(name):
        header = parse_auth_header(value)
        if header.get("algorithm") == "MD5":
            return dict(header.params)
    raise AssertionError("no MD5 challenge")


def authorization(
    challenge: dict,
    user,
    password,
    method,
    uri="sip:vos3k.test",
    nc=1,
    digest_uri=None,
    name="Authorization",
) -> str:
    digest_uri = digest_uri or uri
    nc_text = f"{nc:08x}"
    response = digest_response(
        Algorithm.MD5,
        username=user,
        realm=challenge["realm"],
        password=password,
        method=method,
        uri=digest_uri,
        nonce=challenge["nonce"],
        qop="auth",
        nc=nc_text,
        cnonce="c0ffee",
    )
    return (
        f'{name}: Digest username="{user}", realm="{challenge["realm"]}", '
        f'nonce="{challenge["nonce"]}", uri="{digest_uri}", response="{response}", '
        f'algorithm=MD5, cnonce="c0ffee", qop=auth, nc={nc_text}, '
        f'opaque="{challenge["opaque"]}"'
    )


def register(
    rig,
    *,
    user="1001",
    password="s3cret",
    to_user=None,
    expires="Expires: 120",
    contact="Contact: <sip:1001@192.0.2.10:5062>",
    cseq=1,
    call_id="reg-1",
):
    """The REGISTER 401 -> REGISTER with credentials exchange; returns the final response."""
    endpoint, _clock, transport = rig
    extra = [h for h in (contact, expires) if h]
    endpoint.message_received(
        request("REGISTER", user=user, to_user=to_user, extra=extra, cseq=cseq, call_id=call_id),
        PHONE_ADDR,
    )
    challenge = last_response(transport)
    assert challenge.status == 401
    creds = authorization(challenge_params(challenge), user, password, "REGISTER")
    endpoint.message_received(
        request(
            "REGISTER",
            user=user,
            to_user=to_user,
            extra=[*extra, creds],
            cseq=cseq + 1,
            call_id=call_id,
        ),
        PHONE_ADDR,
    )
    return last_response(transport)


# -- OPTIONS (SPEC §10) -----------------------------------------------------------------


def test_options_gets_200_with_capabilities_and_no_product_name(rig):
    endpoint, _clock, transport = rig
    endpoint.message_received(request("OPTIONS"), PHONE_ADDR)
    [reply] = transport.responses()
    assert reply.status == 200 and reply.to().tag
    assert [v.strip() for v in reply.values("allow")] == list(ALLOW)
    assert reply.header("accept") == "application/sdp"
    assert set(reply.values("supported")) >= {"100rel", "timer"}
    assert reply.header("server") is None and reply.header("user-agent") is None
    # RFC 3261 §18.2.2: back to where the request came from (Via port without rport)
    assert transport.sent[-1][1] == PHONE_ADDR


# -- REGISTER (SPEC §2 phone, §10; RFC 3261 §10.3) --------------------------------------


def test_register_is_challenged_then_bound(rig, store):
    endpoint, clock, _transport = rig
    reply = register(rig)
    assert reply.status == 200
    [contact] = reply.headers_named("contact")
    assert contact == "<sip:1001@192.0.2.10:5062>;expires=120"
    binding = endpoint.lookup("1001")
    assert binding.contact == "sip:1001@192.0.2.10:5062"
    assert parse_source(binding.source) == PHONE_ADDR
    assert endpoint.route_to("1001") == (binding, PHONE_ADDR)
    [row] = store.registrations.load(int(clock.seconds() * 1000))
    assert (row.e164, row.contact, row.source) == ("1001", binding.contact, "udp:192.0.2.10:5062")


def test_unknown_and_known_users_get_the_same_401(rig):
    endpoint, _clock, transport = rig
    shapes = []
    for user in ("1001", "9999"):
        endpoint.message_received(request("REGISTER", user=user), PHONE_ADDR)
        reply = last_response(transport)
        assert reply.status == 401
        shapes.append(
            [
                (name, sorted((k, v) for k, v in parse_auth_header(value).params if k != "nonce"))
                for name, value in reply.headers
                if name.lower() == "www-authenticate"
            ]
        )
    assert shapes[0] == shapes[1] and len(shapes[0]) == 2
    # MD5 on top for UACs that answer the first challenge only; SHA-256 offered too
    algorithms = [dict(params)["algorithm"] for _name, params in shapes[0]]
    assert algorithms == ["MD5", "SHA-256"]


@pytest.mark.parametrize(
    ("user", "password", "to_user"),
    [
        ("1001", "wrong", None),
        ("9999", "s3cret", None),
        ("1002", "other", None),
        ("1001", "s3cret", "1003"),
    ],
    ids=[
        "spec-s10-wrong-password",
        "spec-s10-unknown-user",
        "spec-s2-disabled-phone",
        "rfc3261-s10.3-6-foreign-aor",
    ],
)
def test_register_failures_get_403(rig, user, password, to_user):
    endpoint, _clock, _transport = rig
    assert register(rig, user=user, password=password, to_user=to_user).status == 403
    assert endpoint.lookup(to_user or user) is None


def test_stale_nonce_is_rechallenged_with_stale_true(rig):
    endpoint, clock, transport = rig
    endpoint.message_received(request("REGISTER", extra=["Contact: <sip:1001@h>"]), PHONE_ADDR)
    challenge = challenge_params(last_response(transport))
    clock.advance(301)  # SPEC §10: nonces are valid 300 s
    creds = authorization(challenge, "1001", "s3cret", "REGISTER")
    endpoint.message_received(
        request("REGISTER", extra=["Contact: <sip:1001@h>", creds]), PHONE_ADDR
    )
    reply = last_response(transport)
    assert reply.status == 401
    assert challenge_params(reply).get("stale") == "true"
    assert endpoint.stats["auth_failed"] == 0


def test_suspension_refuses_even_the_right_password(rig):
    endpoint, _clock, _transport = rig
    retries = endpoint.params.snapshot.auth_max_retry
    for n in range(retries):
        assert register(rig, password="wrong", call_id=f"bad{n}").status == 403
    assert register(rig, call_id="good").status == 403  # SPEC §10: suspended
    assert endpoint.authenticator.suspensions.listing(endpoint.now_ms())


@pytest.mark.parametrize(
    ("expires", "contact", "status", "min_expires"),
    [
        ("Expires: 30", "Contact: <sip:1001@h>", 423, "60"),
        (None, "Contact: <sip:1001@h>;expires=59", 423, "60"),
        ("Expires: 60", "Contact: <sip:1001@h>", 200, None),
    ],
    ids=["spec-s2-below-min-header", "spec-s2-below-min-param", "spec-s2-at-min"],
)
def test_register_min_expires(rig, expires, contact, status, min_expires):
    reply = register(rig, expires=expires, contact=contact)
    assert reply.status == status
    assert reply.header("min-expires") == min_expires


def test_register_max_expires_cuts_and_default_is_600(rig):
    reply = register(rig, expires="Expires: 99999", contact="Contact: <sip:1001@a>")
    assert reply.headers_named("contact") == ["<sip:1001@a>;expires=3600"]
    reply = register(rig, expires=None, contact="Contact: <sip:1001@b>", call_id="r2")
    assert "<sip:1001@b>;expires=600" in reply.headers_named("contact")


@pytest.mark.parametrize(
    ("contact", "expires"),
    [("Contact: <sip:1001@192.0.2.10:5062>", "Expires: 0"), ("Contact: *", "Expires: 0")],
    ids=["rfc3261-s10.2.2-expires-0", "rfc3261-s10.2.2-wildcard"],
)
def test_unregister_removes_bindings_and_rows(rig, store, contact, expires):
    endpoint, clock, _transport = rig
    assert register(rig).status == 200
    reply = register(rig, contact=contact, expires=expires, cseq=5)
    assert reply.status == 200 and reply.headers_named("contact") == []
    assert endpoint.lookup("1001") is None
    assert store.registrations.load(int(clock.seconds() * 1000)) == []


def test_bindings_survive_a_restart(rig, store):
    endpoint, clock, _transport = rig
    register(rig)
    endpoint.stopService()
    clock.advance(10)
    restarted, _clock = make_endpoint(store, clock)
    binding = restarted.lookup("1001")
    assert binding is not None and binding.contact == "sip:1001@192.0.2.10:5062"
    assert binding.remaining_s(restarted.now_ms()) == 110
    restarted.stopService()


def test_expired_bindings_are_purged_on_the_timer(rig, store):
    endpoint, clock, _transport = rig
    register(rig)
    assert store.db["registrations"].count == 1
    clock.advance(121)
    assert endpoint.registrar.export(endpoint.now_ms()) == ()
    assert store.db["registrations"].count == 0


# -- other methods (INTERFACE §3) -------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status"),
    [
        ("SUBSCRIBE", 405),
        ("PUBLISH", 405),
        ("MESSAGE", 405),
        ("REFER", 405),
        ("NOTIFY", 405),
        ("FROBNICATE", 501),
    ],
    ids=["405-subscribe", "405-publish", "405-message", "405-refer", "405-notify", "501-unknown"],
)
def test_unhandled_methods(rig, method, status):
    endpoint, _clock, transport = rig
    endpoint.message_received(request(method), PHONE_ADDR)
    reply = last_response(transport)
    assert reply.status == status
    assert [v.strip() for v in reply.values("allow")] == list(ALLOW)


def test_invite_without_a_call_layer_gets_503_retry_after(rig):
    endpoint, _clock, transport = rig
    endpoint.message_received(request("INVITE"), PHONE_ADDR)
    assert [r.status for r in transport.responses()] == [100, 503]
    assert last_response(transport).header("retry-after") == "5"


@pytest.mark.parametrize("method", ["BYE", "PRACK", "UPDATE", "INFO"])
def test_in_dialog_requests_without_a_call_layer_get_481(rig, method):
    endpoint, _clock, transport = rig
    endpoint.message_received(request(method), PHONE_ADDR)
    assert last_response(transport).status == 481


# -- the call layer interface -----------------------------------------------------------


def test_invite_goes_to_the_call_layer_which_answers_on_its_key(rig):
    endpoint, _clock, transport = rig
    endpoint.call_layer = calls = Calls()
    invite = request("INVITE")
    endpoint.message_received(invite, PHONE_ADDR)
    [(kind, method, key)] = calls.seen
    assert (kind, method) == ("request", "INVITE")
    endpoint.send_response(build_response(invite, 180, to_tag="t"), key)
    assert [r.status for r in transport.responses()] == [100, 180]
    endpoint.message_received(invite, PHONE_ADDR)  # a retransmission: absorbed, 180 resent
    assert len(calls.seen) == 1
    assert [r.status for r in transport.responses()] == [100, 180, 180]


def test_cancel_is_answered_and_reported(rig):
    endpoint, _clock, transport = rig
    endpoint.call_layer = calls = Calls()
    invite = request("INVITE", branch="z9hG4bKinv")
    endpoint.message_received(invite, PHONE_ADDR)
    invite_key = calls.seen[0][2]
    endpoint.message_received(request("CANCEL", branch="z9hG4bKinv"), PHONE_ADDR)
    assert last_response(transport).status == 200
    assert calls.seen[-1] == ("cancelled", invite_key)
    endpoint.message_received(request("CANCEL", branch="z9hG4bKnone"), PHONE_ADDR)
    assert last_response(transport).status == 481


def test_client_transaction_responses_and_timeouts_reach_the_call_layer(rig):
    endpoint, clock, transport = rig
    endpoint.call_layer = calls = Calls()
    vendor = Address("UDP", "198.51.100.7", 5060)
    options = request("OPTIONS", via_host="127.0.0.1:5060")
    key = endpoint.send_request(options, vendor)
    assert transport.sent[-1][:2] == (options, vendor)
    endpoint.message_received(build_response(options, 200, to_tag="v"), vendor)
    assert calls.seen == [("response", 200, key)]
    other = request("OPTIONS", via_host="127.0.0.1:5060")
    endpoint.send_request(other, vendor)
    start = endpoint.now_ms()
    clock.advance(31.9)
    assert len(calls.seen) == 1
    clock.advance(0.1)  # SS_SIP_TIMEOUT = 32 s is Timer F
    assert calls.seen[-1] == ("timeout", "OPTIONS", start + 32_000)


def test_a_send_failure_is_a_transport_error(rig):
    endpoint, _clock, transport = rig
    endpoint.call_layer = calls = Calls()
    endpoint.send_request(
        request("INFO", via_host="127.0.0.1:5060"), Address("UDP", "198.51.100.7", 5060)
    )
    on_error = transport.sent[-1][2]
    on_error()
    assert calls.seen == [("transport_error", "INFO")]


def test_ack_for_2xx_is_stateless(rig):
    endpoint, _clock, transport = rig
    ack = request("ACK", via_host="127.0.0.1:5060")
    assert endpoint.send_request(ack, PHONE_ADDR) is None
    assert transport.sent[-1][:2] == (ack, PHONE_ADDR)
    assert len(endpoint.layer) == 0


def test_a_call_layer_bug_is_contained(rig):
    endpoint, _clock, transport = rig

    class Broken(Calls):
        def request(self, request, key, source, now_ms):
            raise RuntimeError("b2bua bug")

    endpoint.call_layer = Broken()
    endpoint.message_received(request("INVITE"), PHONE_ADDR)
    assert [r.status for r in transport.responses()] == [100]  # Trying still went out


# -- timers from parameters (SPEC §9) ----------------------------------------------------


def test_timer_config_follows_parameters(rig):
    endpoint, _clock, _transport = rig
    assert endpoint.layer.config.f == 32_000 and endpoint.layer.config.b == 32_000
    assert endpoint.layer.config.invite_resend_ms == (500, 1000, 2000, 4000, 8000, 16000)
    endpoint.params.set("SS_SIP_TIMEOUT", "10", OPS)
    endpoint.params.set("SS_SIP_RESEND_INTERVAL", "300,600", OPS)
    assert endpoint.layer.config.f == 10_000
    assert endpoint.layer.config.invite_resend_ms == (300, 600)


# -- digest for a phone's INVITE (SPEC §10, INTERFACE §6) --------------------------------


@pytest.mark.parametrize(
    ("digest_uri", "outcome"),
    [
        (None, "ok"),
        ("sip:vos3k.test:5070", "ok"),
        ("sip:127.0.0.1", "ok"),
        ("sip:evil.example", "failed"),
    ],
    ids=[
        "spec-s10-same-uri",
        "interface-s6-own-domain-any-port",
        "interface-s6-own-address",
        "interface-s6-foreign-host",
    ],
)
def test_invite_digest_uri_host_rule(rig, digest_uri, outcome):
    endpoint, _clock, _transport = rig
    invite = request("INVITE", uri="sip:5551234@vos3k.test")
    assert endpoint.check_digest(invite, PHONE_ADDR, proxy=True) is None
    challenge = endpoint.digest_challenge(invite, PHONE_ADDR, proxy=True)
    assert challenge.status == 407
    params = challenge_params(challenge, "Proxy-Authenticate")
    creds = authorization(
        params,
        "1001",
        "s3cret",
        "INVITE",
        uri="sip:5551234@vos3k.test",
        digest_uri=digest_uri,
        name="Proxy-Authorization",
    )
    verdict = endpoint.check_digest(
        request("INVITE", uri="sip:5551234@vos3k.test", extra=[creds]), PHONE_ADDR, proxy=True
    )
    assert verdict.outcome.value == outcome
    assert verdict.username == "1001"


@pytest.mark.parametrize(
    "address",
    [Address("UDP", "192.0.2.1", 5060), Address("TCP", "2001:db8::1", 5070)],
    ids=["ipv4", "rfc5118-ipv6"],
)
def test_source_round_trip(address):
    assert parse_source(format_source(address)) == address
