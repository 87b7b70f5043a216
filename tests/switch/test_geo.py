"""SPEC §10 geofence: the `CIDR,CC` file, CIDR lookups (IPv4/IPv6) and the fence modes."""

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vos3k.switch.geo import (
    CidrMap,
    GeoFence,
    GeoLoad,
    LineProblem,
    Unreadable,
    ip_key,
    parse_geo_lines,
    read_geo_file,
)

SAMPLE = """\
# SS_GEOFENCE_CIDR_FILE sample
1.0.0.0/8,AU
1.2.0.0/16,cn   # lower case is accepted
1.2.3.0/24,JP

2001:db8::/32,NL
2001:db8:1::/48,DE
192.0.2.7,ZZ
"""

LOOKUPS = [
    ("1.0.0.0", "AU"),
    ("1.1.255.255", "AU"),
    ("1.2.0.0", "CN"),
    ("1.2.2.255", "CN"),
    ("1.2.3.0", "JP"),  # most specific wins
    ("1.2.3.255", "JP"),
    ("1.2.4.0", "CN"),
    ("1.255.255.255", "AU"),
    ("2.0.0.0", None),
    ("0.255.255.255", None),
    ("192.0.2.7", "ZZ"),
    ("192.0.2.8", None),
    ("::ffff:1.2.3.4", "JP"),  # dual-stack sockets report IPv4 this way
    ("2001:db8::1", "NL"),
    ("2001:db8:1::1", "DE"),
    ("2001:db8:2::1", "NL"),
    ("2001:db9::", None),
    ("fe80::1%eth0", None),
    ("not-an-ip", None),
    ("1.2", None),
]


@pytest.fixture(scope="module")
def sample() -> GeoLoad:
    return parse_geo_lines(SAMPLE.splitlines())


@pytest.mark.parametrize(("ip", "country"), LOOKUPS, ids=[f"spec10-{ip}" for ip, _ in LOOKUPS])
def test_lookup(sample, ip, country):
    assert sample.table.get(ip) == country


def test_sample_loads_without_problems(sample):
    assert sample.problems == ()
    assert len(sample.table) == 6


BAD_LINES = [
    ("1.0.0.0/8", "expected CIDR,CC"),
    ("1.0.0.0/8,AU,extra", "expected CIDR,CC"),
    ("1.0.0.0/8,AUS", "'AUS' is not a country code"),
    ("1.0.0.0/8,1A", "'1A' is not a country code"),
    ("1.0.0.0/33,AU", "'1.0.0.0/33' is not a CIDR or address"),
    ("1.2.3.4/24,AU", "'1.2.3.4/24' has host bits set"),
    ("example.com,AU", "'example.com' is not a CIDR or address"),
    ("network,country", "'country' is not a country code"),
]


@pytest.mark.parametrize(
    ("line", "reason"), BAD_LINES, ids=[f"spec10-bad-{i}" for i in range(len(BAD_LINES))]
)
def test_bad_line_reported_with_its_number(line, reason):
    loaded = parse_geo_lines(["# header", "5.0.0.0/8,FR", line, "6.0.0.0/8,DE"])
    assert loaded.problems == (LineProblem(3, line, reason),)
    # The good lines around it still load.
    assert loaded.table.get("5.1.1.1") == "FR"
    assert loaded.table.get("6.1.1.1") == "DE"


def test_conflicting_repeat_keeps_first_and_reports():
    loaded = parse_geo_lines(["9.0.0.0/8,FR", "9.0.0.0/8,FR", "9.0.0.0/8,DE"])
    assert loaded.table.get("9.9.9.9") == "FR"
    assert [p.line_no for p in loaded.problems] == [3]
    assert "already FR (line 1)" in str(loaded.problems[0])


def test_read_geo_file(tmp_path):
    path = tmp_path / "geo.csv"
    path.write_text(SAMPLE + "garbage\n", encoding="utf-8")
    loaded = read_geo_file(path)
    assert isinstance(loaded, GeoLoad)
    assert loaded.table.get("1.2.3.4") == "JP"
    assert [p.line_no for p in loaded.problems] == [9]


def test_missing_file_is_a_value(tmp_path):
    result = read_geo_file(tmp_path / "absent.csv")
    assert isinstance(result, Unreadable)
    assert result.path.endswith("absent.csv")


IP_KEYS = [
    ("0.0.0.0", (4, 0)),
    ("255.255.255.255", (4, 2**32 - 1)),
    ("10.0.0.1", (4, 0x0A000001)),
    ("::ffff:10.0.0.1", (4, 0x0A000001)),
    ("::1", (6, 1)),
    ("fe80::1%eth0", (6, 0xFE80 << 112 | 1)),
    ("1", None),
    ("1.2.3", None),
    ("01.2.3.4.5", None),
    ("", None),
    ("::g", None),
]


@pytest.mark.parametrize(
    ("text", "key"), IP_KEYS, ids=[f"ipkey-{t or 'empty'}" for t, _ in IP_KEYS]
)
def test_ip_key(text, key):
    assert ip_key(text) == key


# SPEC §10: mode and countries over the table; unknown public addresses have no country.
FENCE = [
    ("ignore", ("CN",), "1.2.0.1", False),
    ("forbidden", ("CN",), "1.2.0.1", True),
    ("forbidden", ("CN",), "1.2.3.1", False),  # JP inside the CN /16
    ("forbidden", ("CN",), "8.8.8.8", False),  # unknown: not forbidden
    ("allow", ("AU", "JP"), "1.2.3.1", False),
    ("allow", ("AU", "JP"), "1.2.0.1", True),
    ("allow", ("AU",), "8.8.8.8", True),  # unknown public address: no country to allow
    ("allow", ("AU",), "127.0.0.1", False),  # loopback has no country
    ("allow", ("AU",), "192.168.1.10", False),  # RFC 1918
    ("allow", ("AU",), "fd00::1", False),  # ULA
    ("allow", ("AU",), "2001:4860::8888", True),
    ("allow", ("AU",), "garbage", True),
    ("allow", (), "1.0.0.1", True),
]


@pytest.mark.parametrize(
    ("mode", "countries", "ip", "blocked"),
    FENCE,
    ids=[f"spec10-{m}-{ip}" for m, _, ip, _ in FENCE],
)
def test_geofence(sample, mode, countries, ip, blocked):
    fence = GeoFence.build(mode, countries, sample.table)
    assert fence.blocks(ip) is blocked


def test_geofence_countries_are_case_insensitive(sample):
    assert GeoFence.build("forbidden", ["cn"], sample.table).blocks("1.2.0.1")


# ---------------------------------------------------------------- properties

v4_networks = st.builds(
    lambda addr, plen: ipaddress.ip_network((addr, plen), strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
v6_networks = st.builds(
    lambda addr, plen: ipaddress.ip_network((addr, plen), strict=False),
    st.integers(0, 2**128 - 1),
    st.integers(0, 128),
)


def _brute_force(items, address):
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ip_key: a dual-stack socket's form of IPv4
    best = None
    for net, value in items:
        if address.version == net.version and address in net:
            if best is None or net.prefixlen >= best[0].prefixlen:
                best = (net, value)
    return None if best is None else best[1]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.one_of(v4_networks, v6_networks), st.integers(0, 9)), max_size=30),
    st.lists(st.one_of(st.integers(0, 2**32 - 1), st.integers(0, 2**128 - 1)), max_size=30),
)
def test_cidrmap_agrees_with_longest_prefix_match(items, numbers):
    table = CidrMap(items)
    # Probe random addresses and every range edge, where an off-by-one would show.
    probes = [ipaddress.ip_address(n) for n in numbers]
    for net, _ in items:
        probes += [net.network_address, net.broadcast_address]
        if int(net.network_address) > 0:
            probes.append(net.network_address - 1)
    for address in probes:
        assert table.get(str(address)) == _brute_force(items, address)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=40)))
def test_parser_never_raises(lines):
    loaded = parse_geo_lines(lines)
    assert isinstance(loaded, GeoLoad)
    for problem in loaded.problems:
        assert 1 <= problem.line_no <= len(lines)
