"""Tests for vos3k.sip.auth: digest parsing, arithmetic, nonces, verification, suspension."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vos3k.sip.auth import (
    Algorithm,
    AuthHeader,
    DigestAuthenticator,
    DigestCredentials,
    Malformed,
    Outcome,
    Suspension,
    SuspensionTracker,
    digest_response,
    format_auth_header,
    parse_auth_header,
    parse_credentials,
    uri_host,
)

IP = "192.0.2.10"
OTHER_IP = "198.51.100.7"
REQ_URI = "sip:vos3k.example.net"
PASSWORDS = {"1001": "s3cret", "1002": "other"}
OWN_HOSTS = {"vos3k.example.net", "203.0.113.5", "2001:db8::5"}
T0 = 1_700_000_000_000
RETRY, SUSPEND_S = 6, 180


def new_auth(**kwargs) -> DigestAuthenticator:
    counter = itertools.count()
    kwargs.setdefault("secret", b"k" * 32)
    return DigestAuthenticator(
        random_bytes=lambda n: next(counter).to_bytes(n, "big"),
        **kwargs,
    )


def challenge_params(auth: DigestAuthenticator, ip: str, now_ms: int, algorithm: Algorithm):
    for _, value in auth.challenge(ip, now_ms, proxy=False):
        header = parse_auth_header(value)
        assert isinstance(header, AuthHeader)
        if header.get("algorithm") == algorithm.value:
            return header
    raise AssertionError(f"no {algorithm} challenge")


def answer(
    header: AuthHeader,
    *,
    user: str = "1001",
    password: str = "s3cret",
    method: str = "REGISTER",
    uri: str = REQ_URI,
    nc: str = "00000001",
    cnonce: str = "0a4f113b",
    qop: str | None = "auth",
    algorithm: Algorithm = Algorithm.SHA256,
    extra: tuple[tuple[str, str], ...] = (),
    realm: str | None = None,
) -> str:
    """What a well-behaved UA sends back for `header` (RFC 7616 §3.4)."""
    realm = realm if realm is not None else header.get("realm")
    nonce = header.get("nonce")
    response = digest_response(
        algorithm,
        username=user,
        realm=realm,
        password=password,
        method=method,
        uri=uri,
        nonce=nonce,
        qop=qop,
        nc=nc if qop else None,
        cnonce=cnonce if qop else None,
    )
    params = [
        ("username", user),
        ("realm", realm),
        ("nonce", nonce),
        ("uri", uri),
        ("response", response),
        ("algorithm", algorithm.value),
        ("opaque", header.get("opaque")),
    ]
    if qop:
        params += [("qop", qop), ("nc", nc), ("cnonce", cnonce)]
    return format_auth_header("Digest", params + list(extra), bare=("algorithm", "nc", "qop"))


def verify(auth, value, *, ip=IP, now_ms=T0 + 1000, method="REGISTER", uri=REQ_URI, retry=RETRY):
    return auth.verify(
        method=method,
        request_uri=uri,
        header_value=value,
        source_ip=ip,
        now_ms=now_ms,
        password_of=PASSWORDS.get,
        is_own_host=OWN_HOSTS.__contains__,
        max_retry=retry,
        suspend_s=SUSPEND_S,
    )


# ---------------------------------------------------------------------------
# RFC test vectors: parse the RFC's own Authorization value, recompute its response.

RFC2617_3_5 = """Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41\""""

RFC7616_3_9_1 = """Digest username="Mufasa",
       realm="http-auth@example.org",
       uri="/dir/index.html",
       algorithm={alg},
       nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
       nc=00000001,
       cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
       qop=auth,
       response="{response}",
       opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""""


@pytest.mark.parametrize(
    ("value", "algorithm", "password"),
    [
        pytest.param(RFC2617_3_5, Algorithm.MD5, "Circle Of Life", id="RFC2617-3.5-MD5"),
        pytest.param(
            RFC7616_3_9_1.format(alg="MD5", response="8ca523f5e9506fed4657c9700eebdbec"),
            Algorithm.MD5,
            "Circle of Life",
            id="RFC7616-3.9.1-MD5",
        ),
        pytest.param(
            RFC7616_3_9_1.format(
                alg="SHA-256",
                response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
            Algorithm.SHA256,
            "Circle of Life",
            id="RFC7616-3.9.1-SHA-256",
        ),
    ],
)
def test_rfc_vectors(value, algorithm, password):
    creds = parse_credentials(value)
    assert isinstance(creds, DigestCredentials)
    assert creds.username == "Mufasa"
    computed = digest_response(
        algorithm,
        username=creds.username,
        realm=creds.realm,
        password=password,
        method="GET",
        uri=creds.uri,
        nonce=creds.nonce,
        qop=creds.qop,
        nc=creds.nc,
        cnonce=creds.cnonce,
    )
    assert computed == creds.response
    wrong = digest_response(
        algorithm,
        username=creds.username,
        realm=creds.realm,
        password=password.upper(),
        method="GET",
        uri=creds.uri,
        nonce=creds.nonce,
        qop=creds.qop,
        nc=creds.nc,
        cnonce=creds.cnonce,
    )
    assert wrong != creds.response


def test_no_qop_form_rfc2617_3_2_2_1():
    # RFC 2617 §3.2.2.1: without qop, response = H(HA1:nonce:HA2)
    import hashlib

    ha1 = hashlib.md5(b"u:r:p").hexdigest()
    ha2 = hashlib.md5(b"INVITE:sip:x").hexdigest()
    expected = hashlib.md5(f"{ha1}:n:{ha2}".encode()).hexdigest()
    got = digest_response(
        Algorithm.MD5,
        username="u",
        realm="r",
        password="p",
        method="INVITE",
        uri="sip:x",
        nonce="n",
    )
    assert got == expected


# ---------------------------------------------------------------------------
# Parsing


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(
            'Digest USERNAME="a", Realm=r, nonce="n", uri="sip:h", response="x"',
            {"username": "a", "realm": "r", "nonce": "n", "uri": "sip:h", "response": "x"},
            id="RFC7616-3.3-names-case-insensitive",
        ),
        pytest.param(
            r'digest username="a\"b\\c", realm="r", nonce="n", uri="sip:h", response="x"',
            {"username": 'a"b\\c'},
            id="RFC3261-25.1-quoted-pair",
        ),
        pytest.param(
            'Digest ,username="a",, realm="r" ,nonce="n",uri="sip:h",response="x",',
            {"username": "a", "realm": "r"},
            id="RFC7230-7-empty-list-elements",
        ),
        pytest.param(
            'Digest username="a",realm="r",nonce="n",uri=sip:h@x:5060,response="x"',
            {"uri": "sip:h@x:5060"},
            id="lenient-unquoted-uri",
        ),
        pytest.param(
            'Digest username*=UTF-8\'\'J%C3%A4s%C3%B8n, realm="r", nonce="n", uri="sip:h", '
            'response="x"',
            {"username": "Jäsøn"},
            id="RFC7616-3.4.4-username-star",
        ),
        pytest.param(
            'Digest username="a",\r\n realm="r", nonce="n", uri="sip:h", response="x"',
            {"realm": "r"},
            id="RFC3261-7.3.1-folded-lws",
        ),
    ],
)
def test_parse_credentials_valid(value, expected):
    creds = parse_credentials(value)
    assert isinstance(creds, DigestCredentials), creds
    for name, want in expected.items():
        assert getattr(creds, name) == want


@pytest.mark.parametrize(
    ("value", "reason_part"),
    [
        pytest.param("", "no auth scheme", id="empty"),
        pytest.param('Basic dXNlcjpwYXNz"', "", id="basic-token68-not-params"),
        pytest.param('Basic realm="x"', "not Digest", id="RFC7235-other-scheme"),
        pytest.param('Digest username="a" realm="r"', "missing comma", id="missing-comma"),
        pytest.param('Digest username="a', "unterminated", id="unterminated-quote"),
        pytest.param('Digest username="a\\', "quoted-pair", id="dangling-escape"),
        pytest.param('Digest username="a", username="b"', "repeated", id="RFC7616-3.4-dup"),
        pytest.param("Digest username", "without value", id="name-without-value"),
        pytest.param("Digest username=, realm=r", "empty value", id="empty-bare-value"),
        pytest.param(
            'Digest realm="r", nonce="n", uri="u", response="x"', "no username", id="nouser"
        ),
        pytest.param('Digest username="a", nonce="n", uri="u"', "missing realm", id="missing"),
        pytest.param(
            "Digest username=\"a\", username*=UTF-8''b", "both", id="RFC7616-3.4.4-both-names"
        ),
        pytest.param("Digest username*=latin1''b", "username*", id="username-star-charset"),
        pytest.param("Digest username*=UTF-8''%FF", "username*", id="username-star-bad-utf8"),
        pytest.param('Digest username="a\x01"', "control", id="control-char"),
        pytest.param("Digest " + "a=b," * 3000, "too long", id="too-long"),
    ],
)
def test_parse_credentials_malformed(value, reason_part):
    result = parse_credentials(value)
    assert isinstance(result, Malformed)
    assert reason_part in result.reason


@given(st.text(max_size=300))
def test_parse_auth_header_never_raises(text):
    assert isinstance(parse_auth_header(text), AuthHeader | Malformed)
    assert isinstance(parse_credentials(text), DigestCredentials | Malformed)


_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_", min_size=1, max_size=12)
_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=30
)


@given(
    st.dictionaries(_names, _values, min_size=0, max_size=8),
    st.sampled_from(["Digest", "digest", "Other"]),
)
def test_format_parse_round_trip(params, scheme):
    header = AuthHeader(scheme, tuple(params.items()))
    assert parse_auth_header(format_auth_header(scheme, header.params)) == header


@pytest.mark.parametrize(
    ("uri", "host"),
    [
        pytest.param("sip:vos3k.example.net", "vos3k.example.net", id="RFC3261-19.1-host"),
        pytest.param(
            "sip:1001@VOS3K.Example.NET:5070;transport=tcp", "vos3k.example.net", id="port"
        ),
        pytest.param("sips:[2001:DB8::5]:5061", "2001:db8::5", id="ipv6"),
        pytest.param("sip:u:pw@203.0.113.5?x=y", "203.0.113.5", id="password-headers"),
        pytest.param("tel:+15551234", None, id="tel"),
        pytest.param("/dir/index.html", None, id="http-path"),
        pytest.param("sip:", None, id="empty"),
    ],
)
def test_uri_host(uri, host):
    assert uri_host(uri) == host


# ---------------------------------------------------------------------------
# Challenges


@pytest.mark.parametrize(
    ("proxy", "stale", "name"),
    [
        pytest.param(False, False, "WWW-Authenticate", id="SPEC10-REGISTER-401"),
        pytest.param(True, False, "Proxy-Authenticate", id="SPEC10-INVITE-407"),
        pytest.param(True, True, "Proxy-Authenticate", id="RFC7616-3.3-stale"),
    ],
)
def test_challenge_shape(proxy, stale, name):
    auth = new_auth()
    headers = auth.challenge(IP, T0, proxy=proxy, stale=stale)
    assert [h for h, _ in headers] == [name, name]
    parsed = [parse_auth_header(v) for _, v in headers]
    # RFC 8760 §2.4: the preferred (SHA-256) challenge comes first
    assert [p.get("algorithm") for p in parsed] == ["SHA-256", "MD5"]
    for p in parsed:
        assert p.scheme == "Digest"
        assert p.get("realm") == "vos3k"
        assert p.get("qop") == "auth"
        assert p.get("stale") == ("true" if stale else None)
        assert p.get("opaque") == auth.opaque
    assert parsed[0].get("nonce") == parsed[1].get("nonce")
    assert 'qop="auth"' in headers[0][1]
    assert "algorithm=SHA-256" in headers[0][1]


def test_challenge_does_not_depend_on_user():
    # SPEC §10: identical for known and unknown users; only the nonce changes per request.
    auth = new_auth(realm="carrier")
    first = auth.challenge(IP, T0, proxy=False)
    second = auth.challenge(IP, T0, proxy=False)
    nonce1 = parse_auth_header(first[0][1]).get("nonce")
    nonce2 = parse_auth_header(second[0][1]).get("nonce")
    assert nonce1 != nonce2
    assert [v.replace(nonce1, "N") for _, v in first] == [v.replace(nonce2, "N") for _, v in second]
    assert 'realm="carrier"' in first[0][1]


# ---------------------------------------------------------------------------
# Verification


def _case(**kw):
    return kw


VERIFY_CASES = [
    pytest.param(_case(), Outcome.OK, "ok", id="RFC7616-3.4-sha256-ok"),
    pytest.param(_case(algorithm=Algorithm.MD5), Outcome.OK, "ok", id="RFC7616-3.4-md5-ok"),
    pytest.param(_case(qop=None), Outcome.OK, "ok", id="RFC2617-3.2.2.1-no-qop-ok"),
    pytest.param(_case(at=T0 + 299_999), Outcome.OK, "ok", id="SPEC10-nonce-valid-299.999s"),
    pytest.param(
        _case(at=T0 + 300_000), Outcome.STALE, "nonce expired", id="SPEC10-nonce-stale-300s"
    ),
    pytest.param(
        _case(at=T0 + 300_000, password="bad"),
        Outcome.FAILED,
        "wrong password",
        id="SPEC10-stale-nonce-wrong-password-fails",
    ),
    pytest.param(
        _case(ip=OTHER_IP), Outcome.STALE, "nonce not issued to this source", id="SPEC10-wrong-ip"
    ),
    pytest.param(
        _case(ip=OTHER_IP, password="bad"),
        Outcome.FAILED,
        "wrong password",
        id="SPEC10-wrong-ip-wrong-password",
    ),
    pytest.param(_case(password="bad"), Outcome.FAILED, "wrong password", id="SPEC10-wrong-pw"),
    pytest.param(
        _case(user="9999", password="s3cret"), Outcome.FAILED, "unknown user", id="SPEC10-unknown"
    ),
    pytest.param(
        _case(uri="sip:1001@203.0.113.5:5080;transport=udp"),
        Outcome.OK,
        "ok",
        id="SPEC10-digest-uri-own-host-other-port",
    ),
    pytest.param(_case(uri="sip:[2001:db8::5]"), Outcome.OK, "ok", id="SPEC10-digest-uri-own-ipv6"),
    pytest.param(
        _case(uri="sip:evil.example.org"),
        Outcome.FAILED,
        "digest uri does not match request",
        id="SPEC10-digest-uri-foreign-host",
    ),
    pytest.param(
        _case(uri="tel:+15551234"),
        Outcome.FAILED,
        "digest uri does not match request",
        id="SPEC10-digest-uri-no-host",
    ),
    pytest.param(_case(realm="other"), Outcome.FAILED, "wrong realm", id="RFC7616-3.4-realm"),
    pytest.param(
        _case(qop="auth-int"), Outcome.FAILED, "unsupported qop auth-int", id="RFC7616-auth-int"
    ),
    pytest.param(
        _case(nc="1"), Outcome.FAILED, "qop=auth without cnonce or valid nc", id="RFC7616-3.4-nc"
    ),
    pytest.param(
        _case(
            raw='Digest username="1001", realm="vos3k", nonce="x", uri="sip:vos3k.example.net",'
            ' response="00", algorithm=MD5-sess'
        ),
        Outcome.FAILED,
        "unsupported algorithm MD5-sess",
        id="RFC7616-3.4.2-sess-unsupported",
    ),
    pytest.param(
        _case(raw="Digest username"),
        Outcome.FAILED,
        "malformed: auth-param username without value",
        id="malformed",
    ),
]


@pytest.mark.parametrize(("case", "outcome", "reason"), VERIFY_CASES)
def test_verify(case, outcome, reason):
    auth = new_auth()
    header = challenge_params(auth, IP, T0, case.get("algorithm", Algorithm.SHA256))
    value = case.get("raw") or answer(
        header,
        **{
            k: v
            for k, v in case.items()
            if k in ("user", "password", "uri", "qop", "algorithm", "realm", "nc")
        },
    )
    verdict = verify(auth, value, ip=case.get("ip", IP), now_ms=case.get("at", T0 + 1000))
    assert (verdict.outcome, verdict.reason) == (outcome, reason)
    if outcome is not Outcome.OK:
        return
    assert verdict.username == case.get("user", "1001")
    assert verdict.algorithm is case.get("algorithm", Algorithm.SHA256)


def test_wrong_opaque_fails():
    auth = new_auth()
    header = challenge_params(auth, IP, T0, Algorithm.SHA256)
    value = answer(header).replace(auth.opaque, "0" * 32)
    assert verify(auth, value).reason == "wrong opaque"


def test_missing_opaque_is_tolerated():
    auth = new_auth()
    header = challenge_params(auth, IP, T0, Algorithm.SHA256)
    value = answer(header).replace(f', opaque="{auth.opaque}"', "")
    assert "opaque" not in value
    assert verify(auth, value).outcome is Outcome.OK


def test_uppercase_response_hex_accepted():
    auth = new_auth()
    header = challenge_params(auth, IP, T0, Algorithm.MD5)
    value = answer(header, algorithm=Algorithm.MD5)
    creds = parse_credentials(value)
    value = value.replace(creds.response, creds.response.upper())
    assert verify(auth, value).outcome is Outcome.OK


@pytest.mark.parametrize(
    ("sequence", "outcomes"),
    [
        pytest.param(
            [("00000001", "c1"), ("00000001", "c1")],
            [Outcome.OK, Outcome.STALE],
            id="RFC7616-3.4-replayed-nc",
        ),
        pytest.param(
            [("00000001", "c1"), ("00000001", "c2")],
            [Outcome.OK, Outcome.STALE],
            id="same-nc-new-cnonce",
        ),
        pytest.param(
            [("00000001", "c1"), ("00000002", "c1"), ("00000003", "c1")],
            [Outcome.OK, Outcome.OK, Outcome.OK],
            id="increasing-nc",
        ),
        pytest.param(
            [("00000003", "c"), ("00000001", "c"), ("00000002", "c"), ("00000003", "c")],
            [Outcome.OK, Outcome.OK, Outcome.OK, Outcome.STALE],
            id="out-of-order-nc-once-each",
        ),
    ],
)
def test_nonce_count_replay(sequence, outcomes):
    auth = new_auth()
    header = challenge_params(auth, IP, T0, Algorithm.SHA256)
    got = [verify(auth, answer(header, nc=nc, cnonce=cn)).outcome for nc, cn in sequence]
    assert got == outcomes


def test_replayed_nc_reason_and_no_failure_counted():
    auth = new_auth()
    header = challenge_params(auth, IP, T0, Algorithm.SHA256)
    value = answer(header)
    assert verify(auth, value, retry=1).outcome is Outcome.OK
    verdict = verify(auth, value, retry=1)
    assert (verdict.outcome, verdict.reason) == (Outcome.STALE, "nonce count replayed")
    assert auth.suspensions.listing(T0 + 1000) == []


def test_no_qop_nonce_is_single_use():
    auth = new_auth()
    header = challenge_params(auth, IP, T0, Algorithm.MD5)
    value = answer(header, qop=None, algorithm=Algorithm.MD5)
    assert [verify(auth, value).outcome for _ in range(2)] == [Outcome.OK, Outcome.STALE]


def test_same_request_method_matters():
    auth = new_auth()
    header = challenge_params(auth, IP, T0, Algorithm.SHA256)
    value = answer(header, method="INVITE")
    assert verify(auth, value, method="REGISTER").reason == "wrong password"
    assert verify(auth, value, method="INVITE").outcome is Outcome.OK


def test_nonce_from_other_secret_is_stale_not_failed():
    # After a restart with a new secret, a client holding an old nonce re-authenticates.
    old, new = new_auth(secret=b"a" * 32), new_auth(secret=b"b" * 32)
    value = answer(challenge_params(old, IP, T0, Algorithm.SHA256))
    value = value.replace(old.opaque, new.opaque)
    verdict = verify(new, value, retry=1)
    assert (verdict.outcome, verdict.reason) == (Outcome.STALE, "nonce not issued to this source")
    assert verdict.new_suspensions == ()


@pytest.mark.parametrize(
    "nonce",
    [
        pytest.param("!!!", id="not-base64"),
        pytest.param("AAAA", id="too-short"),
        pytest.param("é", id="non-ascii"),
    ],
)
def test_garbage_nonce_with_right_password_is_stale(nonce):
    auth = new_auth()
    header = AuthHeader("Digest", (("realm", "vos3k"), ("nonce", nonce), ("opaque", auth.opaque)))
    verdict = verify(auth, answer(header))
    assert (verdict.outcome, verdict.reason) == (Outcome.STALE, "nonce not ours")


def test_counts_per_nonce_are_bounded():
    auth = new_auth(max_counts_per_nonce=3)
    header = challenge_params(auth, IP, T0, Algorithm.SHA256)
    for n in (5, 2, 3, 4):  # the 4th use pushes the lowest seen count (2) below the floor
        assert verify(auth, answer(header, nc=f"{n:08x}")).outcome is Outcome.OK
    assert verify(auth, answer(header, nc=f"{1:08x}")).reason == "nonce count replayed"
    assert verify(auth, answer(header, nc=f"{6:08x}")).outcome is Outcome.OK


def test_tracked_nonces_are_bounded_and_evicted_nonces_stay_used():
    auth = new_auth(max_tracked_nonces=2)
    headers = [challenge_params(auth, IP, T0 + i, Algorithm.SHA256) for i in range(3)]
    for h in headers:
        assert verify(auth, answer(h)).outcome is Outcome.OK
    assert len(auth._uses) == 2
    # The first nonce's counts were forgotten: a new count on it must not be accepted.
    verdict = verify(auth, answer(headers[0], nc="00000002"))
    assert (verdict.outcome, verdict.reason) == (Outcome.STALE, "nonce counts forgotten")
    assert verify(auth, answer(headers[2], nc="00000002")).outcome is Outcome.OK


def test_purge_and_deadline():
    auth = new_auth()
    assert auth.next_deadline_ms() is None
    header = challenge_params(auth, IP, T0, Algorithm.SHA256)
    assert verify(auth, answer(header)).outcome is Outcome.OK
    assert auth.next_deadline_ms() == T0 + 300_000
    auth.purge(T0 + 299_999)
    assert auth.next_deadline_ms() == T0 + 300_000
    auth.purge(T0 + 300_000)
    assert auth.next_deadline_ms() is None
    # Purged counts cannot be replayed: the nonce is expired by then.
    assert verify(auth, answer(header), now_ms=T0 + 300_000).reason == "nonce expired"


def test_configurable_nonce_ttl():
    auth = new_auth(nonce_ttl_ms=10_000)
    header = challenge_params(auth, IP, T0, Algorithm.SHA256)
    assert verify(auth, answer(header), now_ms=T0 + 10_000).outcome is Outcome.STALE
    assert verify(auth, answer(header), now_ms=T0 + 9_999).outcome is Outcome.OK


def test_nonce_from_the_future_is_stale():
    auth = new_auth()
    header = challenge_params(auth, IP, T0 + 5000, Algorithm.SHA256)
    assert verify(auth, answer(header), now_ms=T0).reason == "nonce expired"


# ---------------------------------------------------------------------------
# Suspension (SPEC §10)


def _fail_n(auth, n, *, ip=IP, user="1001", start=T0, step=1000, retry=3):
    header = challenge_params(auth, ip, start, Algorithm.SHA256)
    verdicts = []
    for i in range(n):
        value = answer(header, user=user, password="bad", nc=f"{i + 1:08x}")
        verdicts.append(verify(auth, value, ip=ip, now_ms=start + i * step, retry=retry))
    return verdicts


def _good(auth, *, ip=IP, user="1001", now_ms, retry=3):
    header = challenge_params(auth, ip, now_ms, Algorithm.SHA256)
    return verify(
        auth, answer(header, user=user, password=PASSWORDS[user]), ip=ip, now_ms=now_ms, retry=retry
    )


def test_suspension_starts_at_max_retry():
    auth = new_auth()
    verdicts = _fail_n(auth, 3)
    assert [v.new_suspensions for v in verdicts[:2]] == [(), ()]
    until = T0 + 2000 + SUSPEND_S * 1000
    assert verdicts[2].new_suspensions == (Suspension(IP, until), Suspension("1001", until))
    assert auth.suspensions.listing(T0 + 2000) == [Suspension("1001", until), Suspension(IP, until)]
    assert auth.suspensions.listing(T0 + 2000)[0].kind == "auth"


@pytest.mark.parametrize(
    ("offset_ms", "outcome", "reason"),
    [
        pytest.param(1, Outcome.FAILED, "suspended", id="SPEC10-right-password-while-suspended"),
        pytest.param(179_999, Outcome.FAILED, "suspended", id="SPEC10-last-ms-of-suspension"),
        pytest.param(180_000, Outcome.OK, "ok", id="SPEC10-suspension-over"),
    ],
)
def test_suspension_boundaries(offset_ms, outcome, reason):
    auth = new_auth()
    _fail_n(auth, 3)  # suspended from T0 + 2000
    verdict = _good(auth, now_ms=T0 + 2000 + offset_ms)
    assert (verdict.outcome, verdict.reason) == (outcome, reason)


def test_suspension_listing_expires():
    auth = new_auth()
    _fail_n(auth, 3)
    assert len(auth.suspensions.listing(T0 + 181_999)) == 2
    assert auth.suspensions.listing(T0 + 182_000) == []


def test_suspended_requests_are_not_counted():
    auth = new_auth()
    _fail_n(auth, 3)
    later = _fail_n(auth, 5, start=T0 + 3000)
    assert {v.reason for v in later} == {"suspended"}
    assert all(v.new_suspensions == () for v in later)
    assert _good(auth, now_ms=T0 + 182_000).outcome is Outcome.OK


@pytest.mark.parametrize(
    ("times", "suspended"),
    [
        pytest.param((0, 1000, 179_999), True, id="SPEC10-three-within-window"),
        pytest.param((0, 1000, 180_000), False, id="SPEC10-first-lapsed-at-window"),
        pytest.param((0, 179_000, 180_000), False, id="SPEC10-sliding"),
    ],
)
def test_sliding_window(times, suspended):
    tracker = SuspensionTracker()
    started = [tracker.record_failure("ip", IP, T0 + t, 3, SUSPEND_S) for t in times]
    assert (started[-1] is not None) is suspended
    assert tracker.is_suspended("ip", IP, T0 + times[-1]) is suspended


def test_success_clears_user_count_only():
    auth = new_auth()
    # The user fails from two addresses, so no single IP reaches the limit.
    _fail_n(auth, 2, ip=IP)
    assert _good(auth, ip=OTHER_IP, now_ms=T0 + 5000).outcome is Outcome.OK
    later = _fail_n(auth, 2, ip=OTHER_IP, start=T0 + 6000)
    assert all(v.new_suspensions == () for v in later)  # user count restarted after success
    # IP's count was not cleared by the user's success: one more failure suspends it.
    third = _fail_n(auth, 1, ip=IP, user="1002", start=T0 + 9000)[0]
    assert third.new_suspensions == (Suspension(IP, T0 + 9000 + 180_000),)


def test_ip_suspension_blocks_other_users_from_that_ip():
    auth = new_auth()
    for i, user in enumerate(("1001", "1002", "9999")):
        _fail_n(auth, 1, user=user, start=T0 + i)
    assert _good(auth, user="1002", now_ms=T0 + 10).reason == "suspended"
    assert _good(auth, user="1002", ip=OTHER_IP, now_ms=T0 + 10).outcome is Outcome.OK


def test_user_suspension_blocks_that_user_from_any_ip():
    auth = new_auth()
    for i, ip in enumerate(("10.0.0.1", "10.0.0.2", "10.0.0.3")):
        _fail_n(auth, 1, ip=ip, start=T0 + i)
    assert _good(auth, ip=OTHER_IP, now_ms=T0 + 10).reason == "suspended"
    assert _good(auth, user="1002", ip=OTHER_IP, now_ms=T0 + 10).outcome is Outcome.OK


def test_unknown_users_are_counted_like_known_ones():
    auth = new_auth()
    verdicts = _fail_n(auth, 3, user="nobody")
    assert [v.outcome for v in verdicts] == [Outcome.FAILED] * 3
    assert Suspension("nobody", T0 + 2000 + 180_000) in verdicts[-1].new_suspensions


def test_malformed_counts_for_the_ip():
    auth = new_auth()
    verdicts = [verify(auth, "Digest ???", now_ms=T0 + i, retry=2) for i in range(2)]
    assert verdicts[-1].new_suspensions == (Suspension(IP, T0 + 1 + 180_000),)


def test_live_parameters_apply_per_call():
    auth = new_auth()
    # SS_AUTHENTICATION_MAX_RETRY lowered between failures: the next failure suspends.
    _fail_n(auth, 2, retry=6)
    verdict = _fail_n(auth, 1, start=T0 + 5000, retry=3)[0]
    assert len(verdict.new_suspensions) == 2


def test_lift():
    auth = new_auth()
    _fail_n(auth, 3)
    assert auth.suspensions.lift(IP) is True
    assert auth.suspensions.lift("1001") is True
    assert auth.suspensions.lift("1001") is False
    assert _good(auth, now_ms=T0 + 3000).outcome is Outcome.OK


def test_tracker_memory_is_bounded():
    tracker = SuspensionTracker(max_keys=8)
    for i in range(100):
        tracker.record_failure("ip", f"10.0.0.{i}", T0 + i, 1, 10)
        tracker.record_failure("user", f"u{i}", T0 + i, 6, 10)
    assert len(tracker._failures) <= 8
    assert len(tracker._suspended) <= 8
    # The newest suspension survives eviction.
    assert tracker.is_suspended("ip", "10.0.0.99", T0 + 100)
