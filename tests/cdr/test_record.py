"""INTERFACE §6 / SPEC §7: the CDR pipe line, hour files and JSON objects."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vos3k.cdr.record import (
    PIPE_FIELDS,
    BillingMode,
    CalleeBilling,
    Cdr,
    Malformed,
    from_pipe_line,
    hour_file_name,
    to_pipe_line,
)
from vos3k.switch.reasons import EndDirection, EndReason

SHANGHAI = ZoneInfo("Asia/Shanghai")
LONDON = ZoneInfo("Europe/London")


def epoch_ms(tz, *args):
    return int(datetime(*args, tzinfo=tz).timestamp()) * 1000


# SPEC §7 table, column "example" (Shanghai as the server's zone).
EXAMPLE = Cdr(
    caller_e164="8613800138000",
    callee_e164="4412345678",
    start_time=epoch_ms(SHANGHAI, 2026, 5, 1, 10, 0, 0),
    stop_time=epoch_ms(SHANGHAI, 2026, 5, 1, 10, 1, 5) + 40,
    hold_time=61040,
    end_reason=EndReason.NORMAL_CLEARING,
    end_direction=EndDirection.CALLER,
    caller_gateway_id="CUST",
    callee_gateway_id="VF1",
    caller_ip="203.0.113.10",
    callee_ip="198.51.100.20",
    caller_access_e164="8613800138000",
    callee_access_e164="004412345678",
    caller_to_gateway_e164="8613800138000",
    callee_to_gateway_e164="774412345678",
    callee_billing=CalleeBilling.CALLER,
    billing_mode=BillingMode.GATEWAY,
    caller_pdd=3200,
    callee_pdd=1500,
    id=7,
    account="CUST",
    fee=Decimal("0.12"),
    cost=Decimal("0.0900"),
    sip_code=200,
    billed_seconds=120,
)
EXAMPLE_LINE = (
    "8613800138000|4412345678|2026-05-01 10:00:00|2026-05-01 10:01:05|61040|1|0|CUST|VF1|"
    "203.0.113.10|198.51.100.20|8613800138000|004412345678|8613800138000|774412345678|"
    "0|1|3200|1500\n"
)


def test_spec7_example_line():
    assert to_pipe_line(EXAMPLE, SHANGHAI) == EXAMPLE_LINE


def test_field_order_is_interface6():
    assert "|".join(PIPE_FIELDS) == (
        "caller_e164|callee_e164|start_time|stop_time|hold_time|end_reason|end_direction|"
        "caller_gateway_id|callee_gateway_id|caller_ip|callee_ip|caller_access_e164|"
        "callee_access_e164|caller_to_gateway_e164|callee_to_gateway_e164|callee_billing|"
        "billing_mode|caller_pdd|callee_pdd"
    )


def test_times_follow_the_server_zone():
    line = to_pipe_line(EXAMPLE, UTC).split("|")
    assert line[2:4] == ["2026-05-01 02:00:00", "2026-05-01 02:01:05"]


@pytest.mark.parametrize(
    ("value", "want"),
    [("44|12", "44_12"), ("a\r\nb", "a__b"), ("x\ny", "x_y"), ("ok", "ok")],
    ids=["iface6-pipe", "iface6-crlf", "iface6-lf", "clean"],
)
def test_unsafe_characters_become_underscore(value, want):
    cdr = attrs.evolve(EXAMPLE, caller_e164=value, caller_gateway_id=value)
    line = to_pipe_line(cdr, UTC)
    assert line.count("|") == 18 and line.count("\n") == 1 and "\r" not in line
    fields = line.rstrip("\n").split("|")
    assert fields[0] == want and fields[7] == want


def test_unbilled_illegal_call_line():
    cdr = Cdr(
        caller_e164="100",
        callee_e164="200",
        start_time=0,
        stop_time=0,
        hold_time=0,
        end_reason=17,
        end_direction=2,
        caller_ip="192.0.2.1",
    )
    assert to_pipe_line(cdr, UTC) == (
        "100|200|1970-01-01 00:00:00|1970-01-01 00:00:00|0|17|2|||192.0.2.1||||||0|-1|0|0\n"
    )
    assert cdr.billing_mode is BillingMode.NONE and cdr.end_reason_name == "Unauthorized IP"


def test_round_trip_of_the_example():
    parsed = from_pipe_line(EXAMPLE_LINE, SHANGHAI)
    assert isinstance(parsed, Cdr)
    assert to_pipe_line(parsed, SHANGHAI) == EXAMPLE_LINE
    assert parsed.stop_time == EXAMPLE.stop_time - 40  # the line keeps whole seconds
    assert parsed.end_reason is EndReason.NORMAL_CLEARING


HOURS = [
    (UTC, (2026, 5, 1, 10, 59, 59), "2026050110.txt"),
    (UTC, (2026, 5, 1, 11, 0, 0), "2026050111.txt"),
    (SHANGHAI, (2026, 12, 31, 23, 30, 0), "2026123123.txt"),
    (timezone(timedelta(hours=-5)), (2026, 1, 1, 0, 0, 1), "2026010100.txt"),
]


@pytest.mark.parametrize(("tz", "local", "want"), HOURS, ids=[h[2] for h in HOURS])
def test_hour_file_name(tz, local, want):
    assert hour_file_name(epoch_ms(tz, *local), tz) == want


def test_hour_file_is_by_local_stop_hour():
    # SPEC §7: stopTime's local hour picks the file; 23:30 UTC is 07:30 next day in Shanghai.
    stop = epoch_ms(UTC, 2026, 5, 1, 23, 30, 0)
    assert hour_file_name(stop, UTC) == "2026050123.txt"
    assert hour_file_name(stop, SHANGHAI) == "2026050207.txt"


def test_dst_ambiguous_hour_renders_both_sides():
    # 2026-10-25 01:30 happens twice in London; each instant renders its own wall time.
    first = epoch_ms(UTC, 2026, 10, 25, 0, 30, 0)
    second = first + 3_600_000
    assert hour_file_name(first, LONDON) == hour_file_name(second, LONDON) == "2026102501.txt"


BAD_LINES = [
    "",
    "a|b",
    EXAMPLE_LINE.replace("|61040|", "|6 1040|"),
    EXAMPLE_LINE.replace("|61040|", "|-5|"),
    EXAMPLE_LINE.replace("|1|0|CUST|", "|26|0|CUST|"),
    EXAMPLE_LINE.replace("|1|0|CUST|", "|0|0|CUST|"),
    EXAMPLE_LINE.replace("|1|0|CUST|", "|1|3|CUST|"),
    EXAMPLE_LINE.replace("|0|1|3200|", "|0|2|3200|"),
    EXAMPLE_LINE.replace("|0|1|3200|", "|2|1|3200|"),
    EXAMPLE_LINE.replace("2026-05-01 10:00:00", "2026-5-1 10:00:00"),
    EXAMPLE_LINE.replace("2026-05-01 10:00:00", "2026-02-30 10:00:00"),
    EXAMPLE_LINE.replace("|3200|", "|+3200|"),
    EXAMPLE_LINE.replace("|3200|", "|٣٢٠٠|"),
    EXAMPLE_LINE.replace("CUST", "CU\rST", 1),
    EXAMPLE_LINE.rstrip("\n") + "|extra\n",
]


@pytest.mark.parametrize("line", BAD_LINES, ids=[f"bad-{i}" for i in range(len(BAD_LINES))])
def test_malformed_lines(line):
    assert isinstance(from_pipe_line(line, UTC), Malformed)


def test_json_dict_has_the_interface6_keys():
    doc = EXAMPLE.to_json_dict(SHANGHAI)
    assert list(doc) == [
        *PIPE_FIELDS,
        "id",
        "end_reason_name",
        "sip_code",
        "account",
        "fee",
        "cost",
        "billed_seconds",
    ]
    assert doc["fee"] == "0.12" and doc["cost"] == "0.0900"  # money as decimal strings
    assert doc["start_time"] == "2026-05-01 10:00:00"
    assert doc["stop_time"] == "2026-05-01 10:01:05"
    assert doc["end_reason"] == 1 and type(doc["end_reason"]) is int
    assert doc["billing_mode"] == 1 and type(doc["billing_mode"]) is int
    assert doc["end_reason_name"] == "Normal Clearing"
    assert (doc["id"], doc["sip_code"], doc["billed_seconds"], doc["hold_time"]) == (
        7,
        200,
        120,
        61040,
    )


def test_float_money_refused():
    with pytest.raises(TypeError):
        attrs.evolve(EXAMPLE, fee=0.12)


numbers = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
times = st.integers(0, 4_102_444_800).map(lambda s: s * 1000)

cdrs = st.builds(
    Cdr,
    caller_e164=numbers,
    callee_e164=numbers,
    start_time=times,
    stop_time=times,
    hold_time=st.integers(0, 10**9),
    end_reason=st.sampled_from(list(EndReason)),
    end_direction=st.sampled_from(list(EndDirection)),
    caller_gateway_id=numbers,
    callee_gateway_id=numbers,
    caller_ip=numbers,
    callee_ip=numbers,
    caller_access_e164=numbers,
    callee_access_e164=numbers,
    caller_to_gateway_e164=numbers,
    callee_to_gateway_e164=numbers,
    callee_billing=st.sampled_from(list(CalleeBilling)),
    billing_mode=st.sampled_from(list(BillingMode)),
    caller_pdd=st.integers(0, 10**6),
    callee_pdd=st.integers(0, 10**6),
)


@given(cdrs, st.sampled_from([UTC, SHANGHAI, timezone(timedelta(hours=-3, minutes=-30))]))
def test_line_round_trip(cdr, tz):
    line = to_pipe_line(cdr, tz)
    assert line.endswith("\n") and line.count("\n") == 1 and line.count("|") == 18
    parsed = from_pipe_line(line, tz)
    assert isinstance(parsed, Cdr)
    assert to_pipe_line(parsed, tz) == line


@given(st.text(max_size=300))
def test_parser_is_total(text):
    assert isinstance(from_pipe_line(text, LONDON), Cdr | Malformed)
