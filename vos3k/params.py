"""The server-parameter registry: VOS3000 names, types, defaults, ranges, live values.

This is the one place where an operator's parameter name (`SS_SIP_TIMEOUT_INVITE`,
misspellings such as `SERVER_BILLING_FEE_PRECISTION` included) meets a Python name
(`sip_timeout_invite_s`).  `PARAMS` describes every parameter of SPEC.md §9;
`LiveParams` holds the current values, persists and audits each change through the
store, and swaps an immutable `Snapshot` so that a call which captured the old
snapshot keeps it while the next call sees the new one.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from attrs import field, frozen


class ParamError(ValueError):
    """A parameter name or value was refused; the message is one line for the shell."""


class UnknownParamError(ParamError):
    """No parameter has this name (nor alias)."""


class Kind(enum.Enum):
    INT = "int"
    BOOL = "bool"
    DECIMAL = "decimal"
    STRING = "string"
    LIST = "list"
    ENUM = "enum"


class Live(enum.Enum):
    """When a change takes effect (SPEC.md §9 "live")."""

    NEXT_CALL = "yes"  # calls snapshot parameters on arrival
    NOW = "now"  # running state follows at once


_TRUE = {"1", "on", "yes", "true"}
_FALSE = {"0", "off", "no", "false"}

Checker = Callable[[Any], "str | None"]


@frozen
class Param:
    """One server parameter as SPEC.md §9 lists it."""

    name: str
    attr: str
    kind: Kind
    default: str
    section: str
    description: str
    live: Live = Live.NEXT_CALL
    min: int | Decimal | None = None
    max: int | Decimal | None = None
    choices: tuple[str, ...] = ()
    unit: str = ""
    aliases: tuple[str, ...] = ()
    check: Checker | None = field(default=None, eq=False, repr=False)
    item: Callable[[str], Any] | None = field(default=None, eq=False, repr=False)

    def parse(self, text: str) -> Any:
        """Turn the shell/db text form into the typed value, or raise ParamError."""
        raw = text.strip() if isinstance(text, str) else str(text)
        value = self._convert(raw)
        if self.check is not None:
            problem = self.check(value)
            if problem:
                raise ParamError(f"{self.name}: {raw!r} {problem}")
        return value

    def _convert(self, raw: str) -> Any:
        if self.kind is Kind.BOOL:
            low = raw.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ParamError(f"{self.name}: {raw!r} is not a boolean (0/1, on/off, yes/no)")
        if self.kind is Kind.INT:
            if not re.fullmatch(r"[+-]?\d+|0x[0-9a-fA-F]+", raw):
                raise ParamError(f"{self.name}: {raw!r} is not an integer")
            number = int(raw, 0) if raw.startswith("0x") else int(raw)
            self._check_range(number, raw)
            return number
        if self.kind is Kind.DECIMAL:
            try:
                number = Decimal(raw)
            except InvalidOperation:
                raise ParamError(f"{self.name}: {raw!r} is not a decimal number") from None
            if not number.is_finite():
                raise ParamError(f"{self.name}: {raw!r} is not a decimal number")
            if number.as_tuple().exponent < -4:  # SPEC.md §1: at most 4 decimals
                raise ParamError(f"{self.name}: {raw!r} has more than 4 decimals")
            self._check_range(number, raw)
            return number
        if self.kind is Kind.ENUM:
            low = raw.lower()
            if low not in self.choices:
                raise ParamError(f"{self.name}: {raw!r} is not one of {', '.join(self.choices)}")
            return low
        if self.kind is Kind.LIST:
            items = [part.strip() for part in raw.split(",")] if raw else []
            if any(not part for part in items):
                raise ParamError(f"{self.name}: {raw!r} has an empty list item")
            if self.item is not None:
                try:
                    return tuple(self.item(part) for part in items)
                except ValueError as exc:
                    raise ParamError(f"{self.name}: {raw!r}: {exc}") from None
            return tuple(items)
        return raw  # STRING

    def _check_range(self, number: int | Decimal, raw: str) -> None:
        if (self.min is not None and number < self.min) or (
            self.max is not None and number > self.max
        ):
            raise ParamError(f"{self.name}: {raw} is out of range {self.min}..{self.max}")

    def render(self, value: Any) -> str:
        """The text form the shell shows and the store keeps."""
        if self.kind is Kind.BOOL:
            return "1" if value else "0"
        if self.kind is Kind.LIST:
            return ",".join(str(v) for v in value)
        return str(value)

    @property
    def default_value(self) -> Any:
        return self.parse(self.default)

    @property
    def range_text(self) -> str:
        if self.choices:
            return "|".join(self.choices)
        if self.min is not None or self.max is not None:
            return f"{self.min}..{self.max}"
        return ""


# ---------------------------------------------------------------- value checkers


def _ip_port(value: str) -> str | None:
    if value == "":
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        return "is not IP:PORT"
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return "is not IP:PORT"
    return None


def _ip_or_empty(value: str) -> str | None:
    if value == "":
        return None
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "is not an IP address"
    return None


def _hours(value: str) -> str | None:
    """`1,8-11`: hours of the day in which CDR queries are refused."""
    if value == "":
        return None
    for part in value.split(","):
        match = re.fullmatch(r"\s*(\d{1,2})(?:\s*-\s*(\d{1,2}))?\s*", part)
        if not match:
            return "is not a list of hours like 1,8-11"
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) else first
        if not (0 <= first <= 23 and 0 <= last <= 23 and first <= last):
            return "has an hour outside 0-23 or a reversed range"
    return None


def _length(low: int, high: int) -> Checker:
    def check(value: str) -> str | None:
        if not low <= len(value) <= high:
            return f"must be {low} to {high} characters"
        return None

    return check


def _resend_intervals(values: tuple[int, ...]) -> str | None:
    if not 1 <= len(values) <= 10:
        return "must list 1 to 10 intervals"
    if any(not 100 <= v <= 30000 for v in values):
        return "has an interval outside 100..30000 ms"
    return None


def _ms_item(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a whole number of ms")
    return int(text)


def _cidr_item(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text, strict=False))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address or CIDR") from None


def _country_item(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z]{2}", text):
        raise ValueError(f"{text!r} is not an ISO 3166 two-letter country code")
    return text.upper()


def _pattern_item(text: str) -> str:
    # SPEC.md §1 patterns: `P*` = starts with P, `*` = all, else exact.
    if not re.fullmatch(r"[0-9A-Za-z#+]*\*?", text) or text == "":
        raise ValueError(f"{text!r} is not a number pattern (digits, optional trailing *)")
    return text


def _prefix_item(text: str) -> str:
    if not re.fullmatch(r"[0-9A-Za-z#*+]+", text):
        raise ValueError(f"{text!r} is not a prefix")
    return text


# ---------------------------------------------------------------- the table

YES, NOW = Live.NEXT_CALL, Live.NOW


def _p(
    name, attr, kind, default, section, description, live=YES, lo=None, hi=None, unit="", **extra
) -> Param:
    if kind is Kind.DECIMAL:
        lo = None if lo is None else Decimal(lo)
        hi = None if hi is None else Decimal(hi)
    return Param(
        name=name,
        attr=attr,
        kind=kind,
        default=default,
        section=section,
        description=description,
        live=live,
        min=lo,
        max=hi,
        unit=unit,
        **extra,
    )


I, B, D, S, L, E = Kind.INT, Kind.BOOL, Kind.DECIMAL, Kind.STRING, Kind.LIST, Kind.ENUM  # noqa: E741

# fmt: off
_DEFINITIONS: tuple[Param, ...] = (
    # -- Billing (SPEC.md §5, §6)
    _p("SERVER_BILLING_FEE_PRECISTION", "billing_fee_precision", I, "2", "billing",
       "Decimals kept in fees and costs, rounded half-up once (the name's spelling is VOS3000's)",
       lo=0, hi=4, unit="decimals"),
    _p("SERVER_BILLING_FEE_UNIT", "billing_fee_unit", D, "0", "billing",
       "When above 0, fees are first rounded half-up to a multiple of this amount",
       lo="0", hi="1", unit="money"),
    _p("SERVER_BILLING_HOLD_TIME_PRECISION", "billing_hold_time_precision_ms", I, "50", "billing",
       "A fraction of a second at least this long (and above 0) bills as a whole second",
       lo=0, hi=999, unit="ms"),
    _p("SERVER_BILLING_FREE_TIME", "billing_free_time_s", I, "0", "billing",
       "Seconds of each answered call that are not charged to the customer",
       lo=0, hi=3600, unit="s"),
    _p("SERVER_BILLING_PREVENT_OVERDRAFT_ADVANCE_TIME", "billing_advance_time_min", I, "1",
       "billing", "Minutes of talk reserved from the balance at a time (prepaid protection)",
       lo=1, hi=15, unit="min"),
    _p("SERVER_BILLING_FREE_E164S", "billing_free_e164s", L, "", "billing",
       "Callee number patterns whose calls cost nothing but keep a CDR",
       item=_pattern_item),
    _p("SERVER_BILLING_NO_CDR_E164S", "billing_no_cdr_e164s", L, "", "billing",
       "Callee number patterns whose calls leave no CDR and no charge (beats the free list)",
       item=_pattern_item),
    _p("SERVER_BILLING_RECORD_ZERO_HOLD_TIME", "billing_record_zero_hold_time", B, "1", "billing",
       "Write CDRs for calls that were never answered", aliases=("SS_CDR_RECORD_NONCONNECT",)),
    _p("SERVER_BILLING_RECORD_SERVER_HANG_UP", "billing_record_server_hang_up", B, "1", "billing",
       "Write CDRs for calls the server ended (end direction 2)"),
    _p("SERVER_BILLING_RECORD_ILLEGAL_CALL", "billing_record_illegal_call", B, "1", "billing",
       "Write CDRs for illegal calls (unknown source, failed authentication)",
       aliases=("SS_CDR_RECORD_ILLEGAL",)),
    _p("SERVER_GATEWAY_ROUTE_PREFIX", "billing_gateway_route_prefix", L, "", "billing",
       "Routing-tag prefixes stripped from the callee before rating",
       aliases=("SERVER_BILLING_GATEWAY_ROUTE_PREFIX",), item=_prefix_item),
    _p("SERVER_PHONE_AS_CALLEE_MONEY_VERIFY", "billing_phone_as_callee_money_verify", B, "1",
       "billing", "Reserve money on the callee's account for callee-pays calls"),
    _p("SERVER_VERIFY_CLEARING_CUSTOMER_REMAIN_MONEY_LIMIT", "billing_verify_clearing_money",
       B, "0", "billing",
       "Skip a vendor gateway whose clearing account cannot cover the vendor rate"),
    _p("SS_NO_BILLING_TO_PHONE", "billing_no_billing_to_phone", B, "0", "billing",
       "Calls to this server's own registered phones (on-net) are free"),
    # -- CDR (SPEC.md §7)
    _p("SS_CDR_RECORD_TO_FILE", "cdr_record_to_file", B, "1", "cdr",
       "Append each CDR to the hourly pipe-format file DATA_DIR/cdr/YYYYMMDDHH.txt", live=NOW),
    _p("SS_CDR_WRITE_INTERVAL", "cdr_write_interval_ms", I, "10", "cdr",
       "Longest wait before pending CDRs are committed in one batch", live=NOW,
       lo=1, hi=1000, unit="ms"),
    _p("SS_CDR_BUFFER_SIZE", "cdr_buffer_size", I, "1000", "cdr",
       "Pending CDRs that trigger a commit before the interval ends", live=NOW,
       lo=1, hi=100000, unit="CDRs"),
    _p("SS_MAX_CDR_PENDING_LIST_LENGTH", "cdr_max_pending", I, "5000", "cdr",
       "Pending CDRs beyond which new calls are refused with 503", live=NOW,
       lo=100, hi=1000000, unit="CDRs"),
    _p("SERVER_CDR_FILE_WRITE_INTERVAL", "cdr_file_fsync_interval_s", I, "1", "cdr",
       "Seconds between fsyncs of the current CDR text file (0 = after every batch)",
       live=NOW, lo=0, hi=3600, unit="s"),
    _p("SERVER_CDR_FILE_WRITE_MAX", "cdr_file_max", I, "0", "cdr",
       "Hourly CDR files kept, newest first (0 = keep all)", live=NOW,
       lo=0, hi=100000, unit="files"),
    _p("SERVER_QUERY_CDR_DENY_TIME", "cdr_query_deny_hours", S, "", "cdr",
       "Hours of the day (e.g. 1,8-11) in which CDR queries, exports and reports are refused",
       live=NOW, unit="h", check=_hours),
    _p("SERVER_QUERY_CDR_MAX_DAYS", "cdr_query_max_days", I, "31", "cdr",
       "Longest date range a CDR query, export or report may span", live=NOW,
       lo=1, hi=366, unit="days"),
    # -- CDR forwarding (INTERFACE.md §4, §6)
    _p("EXTERNAL_SEND_CDR", "feed_enabled", B, "0", "feed",
       "Send each CDR line to the real-time TCP receiver", live=NOW),
    _p("SERVER_CDR_REAL_TIME_REPORT_SERVER", "feed_server", S, "", "feed",
       "Real-time CDR receiver as IP:PORT (TCP, one pipe line per CDR)", live=NOW,
       check=_ip_port),
    _p("EXTERNAL_MAX_CDR_PENDING_SIZE", "feed_max_pending", I, "10000", "feed",
       "Unsent feed lines kept while the receiver is away; the oldest beyond are dropped",
       live=NOW, lo=1000, hi=100000, unit="lines"),
    _p("EXTERNAL_WEB_SEND_PHONE_ONLINE", "feed_phone_online", B, "0", "feed",
       "Report phone online state to an external web service (not implemented yet)",
       live=NOW),
    # -- SIP (SPEC.md §4, §10)
    _p("SS_SIP_TIMEOUT_INVITE", "sip_timeout_invite_s", I, "10", "sip",
       "Seconds a vendor has to answer an INVITE with any response", lo=1, hi=120, unit="s"),
    _p("SS_SIP_TIMEOUT_SESSION_PROGRESS", "sip_timeout_session_progress_s", I, "20", "sip",
       "Seconds from 100 Trying to 18x or 200 before the attempt fails", lo=1, hi=300, unit="s"),
    _p("SS_SIP_TIMEOUT_RINGING", "sip_timeout_ringing_s", I, "120", "sip",
       "Seconds from 180 without SDP to 200 before the call ends as No Answer",
       lo=1, hi=3600, unit="s"),
    _p("SS_SIP_TIMEOUT_SESSION_PROGRESS_SDP", "sip_timeout_session_progress_sdp_s", I, "120",
       "sip", "Seconds from 18x with SDP (early media) to 200 before No Answer",
       lo=1, hi=3600, unit="s"),
    _p("SS_SIP_TIMEOUT", "sip_timeout_s", I, "32", "sip",
       "Timeout of SIP requests other than INVITE", lo=4, hi=300, unit="s"),
    _p("SS_SIP_RESEND_INTERVAL", "sip_resend_interval_ms", L, "500,1000,2000,4000,8000,16000",
       "sip", "Waits between INVITE retransmissions over UDP", unit="ms",
       item=_ms_item, check=_resend_intervals),
    _p("SS_SIP_SESSION_TTL", "sip_session_ttl_s", I, "600", "sip",
       "Session-Expires offered and accepted (RFC 4028)", lo=90, hi=86400, unit="s"),
    _p("SS_SIP_SESSION_UPDATE_SEGMENT", "sip_session_update_segment", I, "2", "sip",
       "The session is refreshed after TTL divided by this", lo=2, hi=10),
    _p("SS_SIP_NO_TIMER_REINVITE_INTERVAL", "sip_no_timer_reinvite_interval_s", I, "7200",
       "sip", "Probe re-INVITE period for calls without session timers (0 = off)",
       lo=0, hi=86400, unit="s"),
    _p("SS_SIP_OPTIONS_CHECK_PERIOD", "sip_options_check_period_s", I, "60", "sip",
       "OPTIONS probe period of routing gateways with options_check", lo=5, hi=3600, unit="s"),
    _p("SS_SIP_STOP_SWITCH_AFTER_SDP", "sip_stop_switch_after_sdp", B, "0", "sip",
       "Stop failover once a vendor has sent SDP"),
    _p("SS_SIP_USER_AGENT_STOP_SWITCH_AFTER_INVITE_TIMEOUT", "sip_ua_stop_switch_after_timeout",
       B, "0", "sip", "A local phone's INVITE timeout ends the call instead of trying gateways"),
    _p("SS_RECOGNIZE_CALL_FORWARD_SIGNAL", "sip_recognize_call_forward", B, "0", "sip",
       "Relay 181 and follow one 301/302 through the same gateway"),
    _p("SS_SIP_REGISTER_MIN_EXPIRES", "sip_register_min_expires_s", I, "60", "sip",
       "Shortest registration accepted; shorter gets 423 Interval Too Brief",
       lo=10, hi=3600, unit="s"),
    _p("SS_SIP_REGISTER_MAX_EXPIRES", "sip_register_max_expires_s", I, "3600", "sip",
       "Longest registration granted; longer requests are cut to this",
       lo=60, hi=86400, unit="s"),
    _p("SS_SIP_REASON_HEADER", "sip_reason_header", B, "1", "sip",
       "Add Reason: Q.850;cause=N to failures and BYEs sent to customers"),
    _p("SS_ENDPOINTTIMETOLIVE", "endpoint_ttl_s", I, "60", "sip",
       "RAS registration time to live and NAT keep-alive period", lo=10, hi=3600, unit="s"),
    _p("SS_LRN_SERVER_IP", "lrn_server_ip", S, "", "sip",
       "LRN server asked for number portability (empty = no dip)", check=_ip_or_empty),
    _p("SS_LRN_SERVER_PORT", "lrn_server_port", I, "5060", "sip",
       "Port of the LRN server", lo=1, hi=65535),
    _p("SS_LRN_TIMEOUT", "lrn_timeout_ms", I, "1000", "sip",
       "Wait for the LRN answer before routing on the dialled number",
       lo=100, hi=10000, unit="ms"),
    _p("SS_AUXILIARY_RING_TONE_ACTIVATION_DELAY", "auxiliary_ring_tone_delay_s", I, "0", "sip",
       "Seconds of silence before local ringback is played (0 = never)",
       lo=0, hi=60, unit="s"),
    # -- H.323 (SPEC.md §11)
    _p("SS_H323_TIMEOUT_SETUP", "h323_timeout_setup_s", I, "10", "h323",
       "Seconds a vendor has to answer a Setup", lo=1, hi=120, unit="s"),
    _p("SS_H323_TIMEOUT_ALERTING", "h323_timeout_alerting_s", I, "20", "h323",
       "Seconds from Call Proceeding to Alerting, Progress or Connect", lo=1, hi=300, unit="s"),
    _p("SS_H323_TIMEOUT_CONNECT", "h323_timeout_connect_s", I, "120", "h323",
       "Seconds from Alerting to Connect before No Answer", lo=1, hi=3600, unit="s"),
    _p("SS_H323_TIMEOUT_H245", "h323_timeout_h245_s", I, "10", "h323",
       "Seconds after Connect for media to be set up before Media Timeout",
       lo=1, hi=60, unit="s"),
    _p("SS_H323_FASTSTART", "h323_faststart", B, "1", "h323",
       "Offer fast start (OpenLogicalChannel proposals) in outgoing Setup"),
    _p("SS_H323_H245_TUNNELING", "h323_h245_tunneling", B, "1", "h323",
       "Tunnel H.245 in Q.931 messages when the peer offers it"),
    _p("SS_H323_CALL_PROCEEDING_IMMEDIATELY", "h323_call_proceeding_immediately", B, "1",
       "h323", "Answer a Setup with Call Proceeding at once"),
    _p("SS_H323_183_TO_ALERTING", "h323_183_to_alerting", B, "0", "h323",
       "Send a SIP 183 with SDP to an H.323 caller as Alerting instead of Progress"),
    _p("SS_H323_GATEKEEPER_ID", "h323_gatekeeper_id", S, "vos3k", "h323",
       "gatekeeperIdentifier used in RAS", check=_length(1, 64)),
    # -- Media (SPEC.md §12)
    _p("SS_MEDIAPROXYMODE", "media_proxy_mode", E, "on", "media",
       "Default media proxy mode of gateways set to 'default'",
       choices=("off", "on", "auto", "must_on")),
    _p("SS_NOMEDIAHANGUPTIME", "media_timeout_s", I, "60", "media",
       "Seconds without RTP after which a proxied call ends as Media Timeout (0 = off)",
       lo=0, hi=3600, unit="s"),
    _p("SS_RTP_LATCH_STRICT", "media_latch_strict", B, "0", "media",
       "Keep relaying to the first RTP source seen; drop packets from any other"),
    # -- Routing (SPEC.md §4)
    _p("SS_GATEWAY_SWITCH_LIMIT", "routing_switch_limit", I, "0", "routing",
       "Most vendor attempts per call (0 = no limit)", lo=0, hi=100, unit="attempts"),
    _p("SS_GATEWAY_SWITCH_UNTIL_CONNECT", "routing_switch_until_connect", B, "0", "routing",
       "Default for gateways' until_connect: keep failing over after 180/183"),
    _p("SS_GATEWAY_SWITCH_STOP_AFTER_USER_BUSY", "routing_stop_after_busy", B, "1", "routing",
       "A busy vendor (486, 600) ends the hunt"),
    _p("SS_GATEWAY_SWITCH_STOP_AFTER_RTP_START", "routing_stop_after_rtp", B, "1", "routing",
       "An attempt that already sent RTP ends the hunt"),
    _p("SS_TRY_PROTECT_ROUTE_DELAY", "routing_protect_delay_s", I, "0", "routing",
       "Seconds after call start within which protect gateways may be tried (0 = always)",
       lo=0, hi=180, unit="s"),
    _p("SS_GATEWAY_QUALITY_CALCULATE", "routing_quality_calculate", B, "1", "routing",
       "Keep ASR, ACD and PDD per gateway", live=NOW, aliases=("SS_GATEWAY_ASR_CALCULATE",)),
    _p("SS_GATEWAY_QUALITY_RESERVE_TIME", "routing_quality_window_s", I, "3600", "routing",
       "Window over which gateway quality is computed", live=NOW, lo=60, hi=86400, unit="s"),
    _p("SS_GATEWAY_QUALITY_RESERVE_SEPARATE", "routing_quality_slices", I, "6", "routing",
       "Slices the quality window is divided into", live=NOW, lo=1, hi=60, unit="slices"),
    _p("SS_GATEWAY_ASR_ROUTE_SORT_CONFIG", "routing_sort_by_asr", B, "0", "routing",
       "Among equal priorities, prefer the gateway with the higher ASR"),
    _p("SS_GATEWAY_FEE_RATE_ROUTE_SORT_CONFIG", "routing_sort_by_rate", B, "0", "routing",
       "Among equal priorities, prefer the gateway with the lower vendor rate",
       aliases=("SERVER_GATEWAY_ROUTE_FEE_RATE_SORT_CONFIG",)),
    _p("SS_GATEWAY_FEE_RATE_ROUTE_BEFORE_ASR", "routing_rate_before_asr", B, "1", "routing",
       "Sort by vendor rate before ASR when both are on",
       aliases=("SERVER_GATEWAY_ROUTE_FEE_RATE_BEFORE_QUALITY",)),
    _p("SERVER_GATEWAY_ROUTE_BILATERAL_RECONCILIATION_LINE", "routing_reconciliation_line",
       S, "", "routing", "Bilateral reconciliation gateways (not implemented yet)"),
    _p("SERVER_GATEWAY_BILATERAL_RECONCILIATION_PERIOD", "routing_reconciliation_period_s",
       I, "0", "routing", "Bilateral reconciliation period (not implemented yet)",
       lo=0, hi=86400, unit="s"),
    _p("FORWARD_SIGNAL_REWRITE_SEQUENCE", "routing_forward_rewrite_sequence", E,
       "rewrite_first", "routing", "Order of caller rewrite and caller pool (pool later)",
       choices=("rewrite_first", "pool_first")),
    # -- Security (SPEC.md §10)
    _p("SS_AUTHENTICATION_MAX_RETRY", "auth_max_retry", I, "6", "security",
       "Failed digests from one IP or for one user before it is suspended", live=NOW,
       lo=1, hi=100, unit="failures"),
    _p("SS_AUTHENTICATION_FAILED_SUSPEND", "auth_failed_suspend_s", I, "180", "security",
       "Suspension length, and the window failures are counted in", live=NOW,
       lo=10, hi=86400, unit="s"),
    _p("SS_BLACK_LIST_DYNAMIC_RUN_MODE", "blacklist_dynamic_mode", E, "off", "security",
       "Dynamic malicious-call blacklist: off, for all gateways, or per gateway",
       live=NOW, choices=("off", "global", "standalone")),
    _p("SS_BLACK_LIST_MALICIOUS_CALL_CHECK_INTERVAL", "blacklist_callee_window_s", I, "600",
       "security", "Window for the per-callee and ratio checks", live=NOW,
       lo=10, hi=86400, unit="s"),
    _p("SS_BLACK_LIST_MALICIOUS_CALL_LIMIT", "blacklist_callee_limit", I, "6", "security",
       "Calls to one callee within the window that ban it", live=NOW,
       lo=1, hi=10000, unit="calls"),
    _p("SS_BLACK_LIST_MALICIOUS_CALL_EXPIRE", "blacklist_callee_expire_s", I, "3600",
       "security", "Ban length for a malicious callee", live=NOW,
       lo=60, hi=604800, unit="s"),
    _p("SS_BLACK_LIST_CALLER_MALICIOUS_CALL_CHECK_INTERVAL", "blacklist_caller_window_s", I,
       "600", "security", "Window for the per-caller check", live=NOW,
       lo=10, hi=86400, unit="s"),
    _p("SS_BLACK_LIST_CALLER_MALICIOUS_CALL_LIMIT", "blacklist_caller_limit", I, "60",
       "security", "Calls from one caller within the window that ban it", live=NOW,
       lo=1, hi=10000, unit="calls"),
    _p("SS_BLACK_LIST_CALLER_MALICIOUS_CALL_EXPIRE", "blacklist_caller_expire_s", I, "3600",
       "security", "Ban length for a malicious caller", live=NOW,
       lo=60, hi=604800, unit="s"),
    _p("SS_BLACK_LIST_SHORT_CALL_TIME", "blacklist_short_call_s", I, "6", "security",
       "Answered calls shorter than this count as short", live=NOW, lo=1, hi=60, unit="s"),
    _p("SS_BLACK_LIST_SHORT_CALL_RATIO", "blacklist_short_call_ratio", I, "80", "security",
       "Share of short calls among a caller's answered calls that bans it", live=NOW,
       lo=1, hi=100, unit="%"),
    _p("SS_BLACK_LIST_FAILED_CALL_RATIO", "blacklist_failed_call_ratio", I, "95", "security",
       "Share of unanswered calls that bans a caller", live=NOW, lo=1, hi=100, unit="%"),
    _p("SS_BLACK_LIST_MIN_CALLS", "blacklist_min_calls", I, "20", "security",
       "Calls a caller must have made before the ratios apply", live=NOW,
       lo=1, hi=10000, unit="calls"),
    _p("SS_BLACK_LIST_CPS_LIMIT", "blacklist_cps_limit", I, "0", "security",
       "Calls per second from one caller that ban it (0 = off)", live=NOW,
       lo=0, hi=1000, unit="calls/s"),
    _p("SS_BLACK_LIST_CALLER_CONCURRENT_LIMIT", "blacklist_caller_concurrent_limit", I, "0",
       "security", "Concurrent calls allowed per caller number (0 = no limit)", live=NOW,
       lo=0, hi=10000, unit="calls"),
    _p("SS_SIGNAL_RATE_LIMIT", "signal_rate_limit", I, "30", "security",
       "SIP/H.323 requests per window from one non-gateway IP before excess is dropped "
       "(0 = off)", live=NOW, lo=0, hi=100000, unit="requests"),
    _p("SS_SIGNAL_RATE_WINDOW", "signal_rate_window_s", I, "2", "security",
       "Window of the signalling rate limit", live=NOW, lo=1, hi=60, unit="s"),
    _p("SS_ACL_ALLOW", "acl_allow", L, "", "security",
       "When set, only these CIDRs (and gateways) may send signalling", live=NOW,
       item=_cidr_item),
    _p("SS_ACL_DENY", "acl_deny", L, "", "security",
       "CIDRs whose signalling is always dropped", live=NOW, item=_cidr_item),
    _p("SS_GEOFENCE_MODE", "geofence_mode", E, "ignore", "security",
       "How the country list is used: ignore it, forbid those countries, allow only them",
       live=NOW, choices=("ignore", "forbidden", "allow")),
    _p("SS_GEOFENCE_COUNTRIES", "geofence_countries", L, "", "security",
       "ISO 3166 country codes for the geofence", live=NOW, item=_country_item),
    _p("SS_GEOFENCE_CIDR_FILE", "geofence_cidr_file", S, "", "security",
       "File of CIDR,CC lines mapping addresses to countries", live=NOW),
    _p("SERVER_LOGIN_MAX_RETRY", "login_max_retry", I, "5", "security",
       "Failed admin logins from one address before it is locked out", live=NOW,
       lo=1, hi=100, unit="failures"),
    _p("SERVER_LOGIN_FAILED_DISABLE_TIME", "login_failed_disable_s", I, "300", "security",
       "Admin login lockout length, and the window failures are counted in", live=NOW,
       lo=10, hi=86400, unit="s"),
    # -- System
    _p("SS_MAX_CONCURRENT_CALLS", "max_concurrent_calls", I, "0", "system",
       "Calls allowed at once in the whole server (0 = no limit)",
       lo=0, hi=1000000, unit="calls"),
    _p("SS_QOS_SIGNAL", "qos_signal_tos", I, "160", "system",
       "IP TOS byte of signalling packets (160 = 0xa0)", live=NOW, lo=0, hi=255, unit="TOS"),
    _p("SS_QOS_RTP", "qos_rtp_tos", I, "160", "system",
       "IP TOS byte of RTP and RTCP packets (160 = 0xa0)", live=NOW, lo=0, hi=255, unit="TOS"),
)
# fmt: on


class ParamRegistry:
    """Every parameter by name and alias, in SPEC.md order."""

    def __init__(self, params: Iterable[Param]):
        self._params: dict[str, Param] = {}
        self._lookup: dict[str, Param] = {}
        attrs: set[str] = set()
        for param in params:
            for key in (param.name, *param.aliases):
                if key in self._lookup:
                    raise ValueError(f"parameter {key} defined twice")
                self._lookup[key] = param
            if param.attr in attrs:
                raise ValueError(f"attribute {param.attr} defined twice")
            attrs.add(param.attr)
            param.default_value  # noqa: B018  (a bad default is a bug: fail at import)
            self._params[param.name] = param

    def __iter__(self) -> Iterator[Param]:
        return iter(self._params.values())

    def __len__(self) -> int:
        return len(self._params)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.upper() in self._lookup

    def get(self, name: str) -> Param:
        """The parameter called `name` or one of its aliases (case-insensitive)."""
        try:
            return self._lookup[name.upper()]
        except KeyError:
            raise UnknownParamError(f"no such parameter: {name}") from None

    def names(self) -> list[str]:
        """Names and aliases, for completion and 'did you mean'."""
        return list(self._lookup)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default_value for p in self}


PARAMS = ParamRegistry(_DEFINITIONS)


class Snapshot(Mapping[str, Any]):
    """An immutable view of every parameter's value, taken by a call on arrival.

    Look values up by VOS3000 name (`snap["SS_SIP_TIMEOUT_INVITE"]`, aliases too) or by
    Python attribute (`snap.sip_timeout_invite_s`).
    """

    def __init__(self, registry: ParamRegistry, values: Mapping[str, Any]):
        # Attributes live in the instance dict so the hot path reads them at plain
        # attribute speed; __setattr__ below keeps the snapshot immutable.
        namespace = self.__dict__
        namespace["_registry"] = registry
        namespace["_by_name"] = dict(values)
        for param in registry:
            namespace[param.attr] = values[param.name]

    def __getitem__(self, name: str) -> Any:
        try:
            return self._by_name[self._registry.get(name).name]
        except UnknownParamError:
            raise KeyError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def __setattr__(self, attr: str, value: Any) -> None:
        raise AttributeError("parameter snapshots are immutable")

    def __delattr__(self, attr: str) -> None:
        raise AttributeError("parameter snapshots are immutable")


@frozen
class Actor:
    """Who changes something, and from where (for the audit trail)."""

    user: str
    source: str


SYSTEM = Actor(user="system", source="local")


class ParamStore(Protocol):
    """What LiveParams needs from the store (vos3k.store.repos.ParamRepo)."""

    def load(self) -> dict[str, str]: ...

    def save(self, name: str, text: str | None, old: str, new: str, actor: Actor) -> None: ...


Observer = Callable[[Param, Any, Any], None]


class LiveParams:
    """The running server's parameter values: validated, persisted, audited, observed."""

    def __init__(self, store: ParamStore, registry: ParamRegistry = PARAMS):
        self._registry = registry
        self._store = store
        self._observers: list[Observer] = []
        values = registry.defaults()
        for name, text in store.load().items():
            if name not in registry:
                continue  # a parameter a newer or older vos3k knew; kept in the db untouched
            param = registry.get(name)
            try:
                values[param.name] = param.parse(text)
            except ParamError as exc:
                raise ParamError(f"invalid value in the database: {exc}") from None
        self._snapshot = Snapshot(registry, values)

    @property
    def registry(self) -> ParamRegistry:
        return self._registry

    @property
    def snapshot(self) -> Snapshot:
        """The current values; a caller that keeps it is unaffected by later changes."""
        return self._snapshot

    def subscribe(self, observer: Observer) -> Callable[[], None]:
        """Call `observer(param, old, new)` after every change; returns an unsubscribe."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    def show(self, name: str) -> tuple[Param, Any]:
        param = self._registry.get(name)
        return param, self._snapshot[param.name]

    def set(self, name: str, text: str, actor: Actor) -> tuple[Param, Any, Any]:
        """Validate, persist with an audit row, then apply; the old value stays on error."""
        param = self._registry.get(name)
        new = param.parse(text)
        return self._apply(param, new, param.render(new), actor)

    def reset(self, name: str, actor: Actor) -> tuple[Param, Any, Any]:
        param = self._registry.get(name)
        return self._apply(param, param.default_value, None, actor)

    def _apply(self, param: Param, new: Any, stored: str | None, actor: Actor):
        old = self._snapshot[param.name]
        self._store.save(param.name, stored, param.render(old), param.render(new), actor)
        values = dict(self._snapshot._by_name)
        values[param.name] = new
        self._snapshot = Snapshot(self._registry, values)
        for observer in list(self._observers):
            observer(param, old, new)
        return param, old, new
