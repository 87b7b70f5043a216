"""The SIP back-to-back user agent: SIP caller and callee legs for the switching engine.

`SipCallLayer` is both the endpoint's `CallLayer` (it gets INVITE, ACK, BYE, CANCEL,
UPDATE, INFO, PRACK and every response to our requests) and the engine's `LegFactory`
for `protocol="sip"`.  It never decides anything about a call: admission, routing,
failover, timers, billing and the CDR are the engine's (switch/).  It translates:

- a customer's INVITE into an `Arrival` and a `SipCallerLeg` (the UAS side); the leg
  turns the engine's `ring/progress/answer/hang_up` into 180/183/200/final/BYE;
- an engine `Setup` into a `SipCalleeLeg` (the UAC side): a new INVITE with a new
  Call-ID and tags (RFC 3261 §8.1.1), whose responses become leg events.

Media: when `Setup.proxy_media` is set, the callee leg opens (or reuses) the call's
`MediaSession` and rewrites each SDP it relays so that both sides send RTP to the proxy
(SPEC.md §12): side A faces the caller, side B the vendor.  Only the first audio stream
is proxied; further m= lines are refused with port 0 (RFC 3264 §6).  Each attempt arms the
session's first-RTP callback on side B (`MediaStarted`, SPEC §4); at answer the caller
leg arms the media timeout on the sides `Setup.media_watch` names, and silence there
ends the call through `engine.release(call_id, 15)` (SPEC §12).

In-dialog requests (re-INVITE, UPDATE, INFO) of an answered call are relayed to the other
leg and the final answer relayed back; before answer they get 491 (re-INVITE, UPDATE) or
200 (INFO).

100rel/PRACK (RFC 3262, vos3k/sip/reliable.py) is negotiated hop by hop.  Our INVITE to a
vendor says `Supported: 100rel` when it carries the offer; each reliable 18x the vendor
sends is PRACKed by the callee leg (retransmissions and out-of-order ones are dropped)
and relayed like any 18x.  Towards the customer, the caller leg sends its 18x reliably
(Require: 100rel, RSeq) when the INVITE requires 100rel, and those carrying SDP when it
only supports it; it retransmits each until its PRACK (T1 doubling), sends the next only
after that, holds a 2xx while an SDP-carrying one is unacknowledged, and ends the call as
14 (a 500 to the customer) when no PRACK comes within 64*T1.  A PRACK that matches
nothing gets 481.

Session timers (RFC 4028, vos3k/sip/timers.py): each leg negotiates its own (the caller
leg as UAS, 422 below Min-SE; the callee leg offers SS_SIP_SESSION_TTL as UAC); a leg
without one is probed with a re-INVITE every SS_SIP_NO_TIMER_REINVITE_INTERVAL s.  A
relayed 2xx re-INVITE/UPDATE refreshes both legs; a lost refresh (408, 481, none) or
an expired session ends the call through `engine.release(call_id, 14)`.

P-Asserted-Identity/Privacy (RFC 3325/3323): the caller number comes from PAI; when
the customer is a mapping gateway (trusted), the vendor's INVITE asserts it in PAI and
carries the customer's Privacy.  The gateway OPTIONS probe (probe.py) installs here.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import attrs
from twisted.logger import Logger

from vos3k.media.policy import Leg as Side
from vos3k.media.ports import PortsExhausted
from vos3k.sip.auth import Outcome
from vos3k.sip.dialog import Dialog, DialogError, DialogState
from vos3k.sip.message import (
    HeaderError,
    IdSource,
    Request,
    Response,
    build_response,
    parse_name_addr,
)
from vos3k.sip.probe import install_probe
from vos3k.sip.reliable import (
    RAck,
    ReliableReceiver,
    ReliableSender,
    Support,
    Verdict,
    is_reliable,
    parse_rack,
    parse_rseq,
    support,
)
from vos3k.sip.sdp import Media as SdpMedia
from vos3k.sip.sdp import SdpError, parse_sdp, rewrite_sdp
from vos3k.sip.timers import (
    LegSession,
    Negotiated,
    SessionKeeper,
    TimerHeaders,
    TooBrief,
    negotiate_as_uac,
    negotiate_as_uas,
    offer_headers,
    read_timer_headers,
    request_headers,
    response_headers,
)
from vos3k.sip.timers import Malformed as TimerMalformed
from vos3k.sip.transaction import Address, TransactionKey, build_cancel, response_destination
from vos3k.switch.admission import Arrival
from vos3k.switch.call import PhoneTarget
from vos3k.switch.engine import Accepted, Unavailable
from vos3k.switch.legs import (
    Answered,
    Dtmf,
    Ending,
    Failed,
    HungUp,
    Media,
    MediaStarted,
    Proceeding,
    Progress,
    Ringing,
    Setup,
)
from vos3k.switch.reasons import EndReason

SDP = "application/sdp"
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, PRACK, UPDATE, INFO"
T1_S, T2_S = 0.5, 4.0  # RFC 3261 §13.3.1.4: 2xx retransmission until the ACK
ACK_WAIT_S = 64 * T1_S
PRACK_WAIT_S = 64 * T1_S  # RFC 3262 §3: a reliable 18x is retransmitted this long
RELAYED = frozenset({"INVITE", "UPDATE", "INFO"})
DTMF_RELAY = "application/dtmf-relay"
DTMF_DIGITS = frozenset("0123456789*#ABCD")
MEDIA_TIMEOUT = EndReason.MEDIA_TIMEOUT  # SPEC §8 reason 15
SESSION_TIMEOUT = EndReason.SESSION_TIMEOUT  # SPEC §8 reason 14 (RFC 4028, no-timer probe)
ANONYMOUS_FROM = '"Anonymous" <sip:anonymous@anonymous.invalid>'  # RFC 3323 §4.1.1.3

Report = Callable[[Any], None]


def user_of(value: str | None) -> str:
    """The user part of a name-addr/URI header value ("" when there is none)."""
    if not value:
        return ""
    try:
        return parse_name_addr(value).uri.user or ""
    except HeaderError:
        return ""


def dtmf_of(body: bytes, content_type: str | None) -> Dtmf | None:
    """The digit of an INFO application/dtmf-relay body ("Signal=5", "Duration=160")."""
    if (content_type or "").split(";")[0].strip().lower() != DTMF_RELAY:
        return None
    fields = {}
    for line in body.decode("ascii", "replace").splitlines():
        name, _, value = line.partition("=")
        fields[name.strip().lower()] = value.strip()
    digit = fields.get("signal", "").upper()
    if len(digit) != 1 or digit not in DTMF_DIGITS:
        return None
    duration = fields.get("duration", "")
    return Dtmf(digit, int(duration) if duration.isdigit() and 0 < int(duration) < 60000 else 100)


_MEDIA_MEMO: dict[bytes, Media] = {}
_MEDIA_MEMO_MAX = 1024


def media_of(body: bytes, content_type: str | None) -> Media | None:
    """The switch's summary of an SDP body (None without SDP)."""
    if not body or (content_type != SDP and _bare_type(content_type) != SDP):
        return None
    # a call reads its caller's offer several times (admission, each attempt's
    # rewrite); the summary is a frozen value of the body alone (bounded memo)
    found = _MEDIA_MEMO.get(body)
    if found is None:
        found = _summary(body)
        if len(_MEDIA_MEMO) >= _MEDIA_MEMO_MAX:
            _MEDIA_MEMO.clear()
        _MEDIA_MEMO[body] = found
    return found


def _bare_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _summary(body: bytes) -> Media:
    sdp = parse_sdp(body)
    if isinstance(sdp, SdpError) or not sdp.media:
        return Media(body=body)
    first = sdp.media[0]
    codecs = tuple(first.rtpmaps[f].encoding if f in first.rtpmaps else f for f in first.formats)
    return Media(
        body=body,
        address=first.address or "",
        port=first.port,
        codecs=codecs,
        direction=first.direction.value,
    )


def rewritten_summary(
    media: Media, first: SdpMedia, body: bytes, address: str, port: int | None
) -> Media:
    """``media_of(body)`` for ``body = rewrite_sdp(sdp, address=address, ports=[port, 0...])``
    without parsing it again: only the first stream's address and port change (a hold
    address and a rejected port 0 are kept, as rewrite_sdp keeps them)."""
    connection = first.connection
    if connection is not None and connection.address not in ("0.0.0.0", "::"):
        media_address = address
    else:
        media_address = media.address
    media_port = first.port if port is None or first.port == 0 else port
    return Media(
        body=body,
        address=media_address,
        port=media_port,
        codecs=media.codecs,
        direction=media.direction,
    )


class SipCallLayer:
    """Routes SIP messages to legs; makes callee legs for the engine."""

    log = Logger()

    def __init__(
        self,
        endpoint: Any,
        engine: Any,
        media: Any,
        params: Any,
        clock: Any,
        ids: IdSource | None = None,
    ):
        self.endpoint = endpoint
        self.engine = engine
        self.media = media
        self.params = params
        self.clock = clock
        self.ids = ids or IdSource()
        self.dialogs: dict[tuple[str, str], _SipLeg] = {}  # (Call-ID, our tag) -> leg
        self.invites: dict[TransactionKey, SipCallerLeg] = {}  # INVITE server txn -> leg
        self.clients: dict[TransactionKey, Callable[[Response | None], None]] = {}
        self.callers: dict[str, SipCallerLeg] = {}  # switch call id -> caller leg
        self.by_call_id: dict[str, SipCalleeLeg] = {}  # our Call-ID -> callee leg
        # the caller leg inside engine.incoming(): its first attempt is offered before
        # attach() names it in `callers` (PAI/Privacy pass-through, SipCalleeLeg.offer)
        self.arriving: SipCallerLeg | None = None

    # -- CallLayer ------------------------------------------------------------------

    def request(
        self, request: Request, key: TransactionKey | None, source: Address, now_ms: int
    ) -> None:
        method = request.method
        try:
            to_tag = request.to().tag
            call_id = request.call_id()
        except HeaderError:
            if key is not None:
                self.endpoint.send_response(build_response(request, 400), key)
            return
        if method == "INVITE" and not to_tag:
            self._new_call(request, key, source)
            return
        leg = self.dialogs.get((call_id, to_tag or ""))
        if method == "ACK":
            if leg is not None and key is None:
                leg.acked(request)
            return
        if leg is None:
            if key is not None:
                self.endpoint.send_response(build_response(request, 481), key)
            return
        leg.in_dialog(request, key, source)

    def cancelled(self, invite_key: TransactionKey, cancel: Request, now_ms: int) -> None:
        leg = self.invites.get(invite_key)
        if leg is not None:
            leg.peer_cancelled()

    def response(
        self, response: Response, key: TransactionKey | None, source: Address, now_ms: int
    ) -> None:
        if key is None:  # a 2xx retransmission after the INVITE transaction ended
            try:
                leg = self.by_call_id.get(response.call_id())
            except HeaderError:
                return
            if leg is not None:
                leg.reack(response)
            return
        handler = self.clients.get(key)
        if handler is None:
            return
        if response.status >= 200:
            self.clients.pop(key, None)
        handler(response)

    def timeout(self, key: TransactionKey, request: Request, now_ms: int) -> None:
        handler = self.clients.pop(key, None)
        if handler is not None:
            handler(None)
        leg = self.invites.get(key)
        if leg is not None:  # Timer H: our final response was never ACKed
            leg.ack_timeout()

    transport_error = timeout

    # -- LegFactory -----------------------------------------------------------------

    def create_leg(self, setup: Setup, report: Report) -> SipCalleeLeg:
        return SipCalleeLeg(self, setup, report)

    # -- phones as targets ----------------------------------------------------------

    def locate(self, e164: str) -> PhoneTarget | None:
        found = self.endpoint.route_to(e164)
        if found is None:
            return None
        binding, address = found
        return PhoneTarget(address.host, address.port, binding.contact, "sip")

    # -- helpers for legs -----------------------------------------------------------

    def via(self, destination: Address) -> str:
        local = self.endpoint.local_address(destination)
        branch = self.ids.branch()
        return f"SIP/2.0/{destination.transport.upper()} {_hostport(local)};branch={branch};rport"

    def contact(self, destination: Address, user: str = "") -> str:
        local = self.endpoint.local_address(destination)
        at = f"{user}@" if user else ""
        transport = "" if destination.transport.upper() == "UDP" else ";transport=tcp"
        return f"<sip:{at}{_hostport(local)}{transport}>"

    def send(
        self,
        request: Request,
        destination: Address,
        handler: Callable[[Response | None], None] | None,
    ) -> TransactionKey | None:
        key = self.endpoint.send_request(request, destination)
        if key is not None and handler is not None:
            self.clients[key] = handler
        return key

    def reason_header(self, ending: Ending) -> tuple[tuple[str, str], ...]:
        if not self.params.snapshot.sip_reason_header:
            return ()
        return (("Reason", f"Q.850;cause={ending.q850}"),)

    def media_session(self, call_id: str):
        if self.media is None:
            return None
        return self.media.open_session(call_id)

    def existing_session(self, call_id: str):
        return None if self.media is None else self.media.session(call_id)

    def add_dialog(self, key: tuple[str, str], leg: _SipLeg) -> None:
        self.dialogs[key] = leg
        leg.dialog_keys.append(key)

    def forget(self, leg: _SipLeg) -> None:
        # the leg lists its own keys: no scan of every live dialog per ended call
        for key in leg.dialog_keys:
            if self.dialogs.get(key) is leg:
                del self.dialogs[key]
        leg.dialog_keys.clear()

    # -- a new call -----------------------------------------------------------------

    def _new_call(self, request: Request, key: TransactionKey, source: Address) -> None:
        try:
            callee = request.request_uri().user or ""
            from_user = request.from_().uri.user or ""
            pai = request.header("p-asserted-identity")
        except HeaderError:
            self.endpoint.send_response(build_response(request, 400), key)
            return
        caller = user_of(pai) or from_user
        leg = SipCallerLeg(self, request, key, source)
        refusal = leg.read_session_timer()  # RFC 4028 §9: 400 / 422 before admission
        if refusal is not None:
            self.endpoint.send_response(refusal, key)
            return
        arrival = Arrival(
            call_id="",
            source_ip=source.host,
            source_port=source.port,
            protocol="sip",
            caller=caller,
            callee=callee,
            from_user=from_user,
            media=media_of(request.body, request.content_type()),
        )
        verdict = self.endpoint.check_digest(request, source, proxy=True)
        if verdict is not None:
            if verdict.outcome is Outcome.STALE:
                self.endpoint.send_response(
                    self.endpoint.digest_challenge(request, source, proxy=True, stale=True), key
                )
                return
            if verdict.outcome is Outcome.OK and verdict.username == from_user:
                arrival = attrs.evolve(arrival, authenticated=from_user)
            else:  # a wrong digest, a suspended phone/IP, or someone else's credentials
                arrival = attrs.evolve(arrival, auth_failed=True)
        self.invites[key] = leg
        self.arriving = leg
        try:
            outcome = self.engine.incoming(leg, arrival)
        finally:
            self.arriving = None
        if isinstance(outcome, Accepted):
            leg.attach(outcome.call_id, outcome.report)
        elif isinstance(outcome, Unavailable):
            leg.final(
                build_response(request, 503, headers=(("Retry-After", str(outcome.retry_after_s)),))
            )
        else:  # Challenge: a provisioned phone without credentials
            self.invites.pop(key, None)
            self.endpoint.send_response(
                self.endpoint.digest_challenge(request, source, proxy=True), key
            )


def _hostport(address: Address) -> str:
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"{host}:{address.port}"


def proxied_sdp(
    session: Any, side: Side, body: bytes, content_type: str | None
) -> tuple[bytes, Media | None]:
    """SDP that arrived from `side` of a call: tell its media `session` (None: not
    proxied) where that side receives, and rewrite the SDP to the proxy's address on the
    other side, which will receive it; the body to relay and its summary."""
    media = media_of(body, content_type)
    if media is None or session is None:
        return body, media
    sdp = parse_sdp(body)
    if isinstance(sdp, SdpError) or not sdp.media:
        return body, media
    first = sdp.media[0]
    if first.address and first.port:
        session.set_remote(side, first.address, first.port, first.direction.value)
    other = Side.B if side is Side.A else Side.A
    ip, port = session.local_address(other)
    ports = [port] + [0] * (len(sdp.media) - 1)
    rewritten = rewrite_sdp(sdp, address=ip, ports=ports, origin_address=ip)
    return rewritten, rewritten_summary(media, first, rewritten, ip, port)


class _SipLeg(abc.ABC):
    """What caller and callee legs share: a dialog, a peer, in-dialog relaying."""

    log = Logger()

    def __init__(self, layer: SipCallLayer):
        self.layer = layer
        self.dialog: Dialog | None = None
        self.peer: _SipLeg | None = None
        self.destination: Address | None = None
        self.report: Report = lambda event: None
        self.side = Side.A
        self.call_id = ""
        self.ended = False
        self.keeper: SessionKeeper | None = None  # RFC 4028 timer or no-timer probe
        self.local_sdp = b""  # the last SDP sent to this leg (a refresh re-INVITE's)
        self.dialog_keys: list[tuple[str, str]] = []  # this leg's entries in layer.dialogs

    # -- media rewriting ----------------------------------------------------------

    def incoming_sdp(self, body: bytes, content_type: str | None) -> tuple[bytes, Media | None]:
        """SDP this leg's peer sent, through the call's proxy session (`proxied_sdp`)."""
        return proxied_sdp(self.layer.existing_session(self.call_id), self.side, body, content_type)

    # -- in-dialog requests ---------------------------------------------------------

    def in_dialog(self, request: Request, key: TransactionKey | None, source: Address) -> None:
        if self.dialog is not None:
            checked = self.dialog.on_request(request)
            if isinstance(checked, DialogError):
                if key is not None and checked.status:
                    self.layer.endpoint.send_response(build_response(request, checked.status), key)
                return
            self.dialog = checked
        method = request.method
        if method == "BYE":
            self.bye_received(request, key)
        elif method in RELAYED and key is not None:
            self.relay(request, key)
        elif method == "PRACK" and key is not None:
            self.prack_received(request, key)
        elif key is not None:
            self.layer.endpoint.send_response(build_response(request, 481), key)

    def prack_received(self, request: Request, key: TransactionKey) -> None:
        """RFC 3262 §3: a PRACK that acknowledges nothing we sent gets 481."""
        self.layer.endpoint.send_response(build_response(request, 481), key)

    def relay(self, request: Request, key: TransactionKey) -> None:
        peer = self.peer
        respond = self.layer.endpoint.send_response
        if peer is None and request.method == "INFO" and not self.ended:
            # No SIP peer (an H.323 leg): a dtmf-relay digit goes through the engine.
            dtmf = dtmf_of(request.body, request.content_type())
            if dtmf is not None:
                self.report(dtmf)
        if peer is None or peer.dialog is None or peer.ended or self.ended:
            status = 200 if request.method == "INFO" else 491
            respond(build_response(request, status), key)
            return
        body, _ = self.incoming_sdp(request.body, request.content_type())
        refresh = request.method != "INFO"  # RFC 4028 §10: any 2xx re-INVITE/UPDATE
        timer = self.timer_for_refresh(request) if refresh else None

        def answered(response: Response | None) -> None:
            if response is None:
                respond(build_response(request, 408), key)
                return
            if response.status < 200:
                return
            out_body, _ = peer.incoming_sdp(response.body, response.content_type())
            extra = (("Contact", self.local_contact()),) if request.method != "INFO" else ()
            if refresh and response.status < 300:
                extra += self.refreshed_as_uas(timer)
                peer.refreshed_as_uac(response)
                if out_body:
                    self.local_sdp = out_body
            respond(
                build_response(
                    request,
                    response.status,
                    response.reason,
                    headers=extra,
                    body=out_body,
                    content_type=response.content_type(),
                ),
                key,
            )
            if request.method == "INVITE" and response.status < 300:
                peer.ack_reinvite(response)

        headers = peer.refresh_request_headers() if refresh else ()
        peer.send_in_dialog(request.method, body, request.content_type(), answered, headers)

    def send_in_dialog(
        self,
        method: str,
        body: bytes,
        content_type: str | None,
        handler: Callable[[Response | None], None] | None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        if self.dialog is None or self.destination is None:
            if handler is not None:
                handler(None)
            return
        self.dialog, request = self.dialog.new_request(
            method,
            self.layer.via(self.destination),
            headers=headers,
            body=body,
            content_type=content_type if body else None,
        )
        if body and (content_type or "").split(";")[0].strip().lower() == SDP:
            self.local_sdp = body
        self._last_in_dialog = request
        self.layer.send(request, self.destination, handler)

    def ack_reinvite(self, response: Response) -> None:
        request = getattr(self, "_last_in_dialog", None)
        if self.dialog is None or self.destination is None or request is None:
            return
        ack = self.dialog.ack(request.cseq().number, self.layer.via(self.destination))
        self.layer.endpoint.send_stateless(ack, self.destination)

    def send_dtmf(self, dtmf: Dtmf) -> None:
        """A digit from the other (H.323) leg as INFO application/dtmf-relay (SPEC §11)."""
        if self.dialog is None or self.ended:
            return
        body = f"Signal={dtmf.digit}\r\nDuration={dtmf.duration_ms}\r\n".encode("ascii")
        self.send_in_dialog("INFO", body, DTMF_RELAY, None)

    def local_contact(self) -> str:
        return self.layer.contact(self.destination) if self.destination else ""

    # -- session timers (RFC 4028) and the no-timer probe: vos3k/sip/timers.py ------

    def start_session(self, timer: Negotiated | None, allows_update: bool) -> None:
        """At answer: refresh (or expect refreshes of) this leg's session; without a
        timer, probe it every SS_SIP_NO_TIMER_REINVITE_INTERVAL s (0 = off)."""
        snap = self.layer.params.snapshot
        now = int(self.layer.clock.seconds() * 1000)
        if timer is not None:
            segment = int(snap.sip_session_update_segment)
            session = LegSession.with_timer(timer, segment, allows_update, now)
        else:
            session = LegSession.probing(int(snap.sip_no_timer_reinvite_interval_s), now)
        if session is not None and not self.ended:
            self.keeper = SessionKeeper(
                session, self.layer.clock, self._send_refresh, self._session_expired
            )

    def stop_session(self) -> None:
        if self.keeper is not None:
            self.keeper.stop()
            self.keeper = None

    def _send_refresh(self, method: str, headers: tuple[tuple[str, str], ...], on_answer) -> None:
        def answered(response: Response | None) -> None:
            if response is not None and response.status < 200:
                return
            if response is not None and method == "INVITE" and response.status < 300:
                self.ack_reinvite(response)
                self.incoming_sdp(response.body, response.content_type())
            on_answer(None if response is None else response.status)

        # RFC 3264 §8: a refresh re-INVITE offers the unchanged session again
        body = self.local_sdp if method == "INVITE" else b""
        self.send_in_dialog(method, body, SDP if body else None, answered, headers)

    def _session_expired(self) -> None:
        if self.ended:
            return
        self.log.info("call {call_id}: session refresh failed", call_id=self.call_id)
        self.layer.engine.release(self.call_id, SESSION_TIMEOUT)

    def timer_for_refresh(self, request: Request) -> Negotiated | None:
        """RFC 4028 §9 for a refresh this leg sent: the renegotiated timer, if any."""
        if self.keeper is None or self.keeper.timer is None:
            return None
        headers = read_timer_headers(request)
        if isinstance(headers, TimerMalformed):
            return None
        ttl = int(self.layer.params.snapshot.sip_session_ttl_s)
        timer = negotiate_as_uas(headers, ttl)
        return timer if isinstance(timer, Negotiated) else None

    def refreshed_as_uas(self, timer: Negotiated | None) -> tuple[tuple[str, str], ...]:
        """This leg's re-INVITE/UPDATE got our 2xx: restart; the 2xx's timer headers."""
        if self.keeper is None:
            return ()
        self.keeper.peer_refreshed(timer)
        return () if self.keeper.timer is None else response_headers(self.keeper.timer)

    def refreshed_as_uac(self, response: Response) -> None:
        """A re-INVITE/UPDATE we relayed to this leg got a 2xx: that refreshes it too."""
        if self.keeper is None:
            return
        timer = None
        if self.keeper.timer is not None:
            headers = read_timer_headers(response)
            if not isinstance(headers, TimerMalformed):
                timer = negotiate_as_uac(headers, self.keeper.timer.interval_s)
        self.keeper.peer_refreshed(timer)

    def refresh_request_headers(self) -> tuple[tuple[str, str], ...]:
        if self.keeper is None or self.keeper.timer is None:
            return ()
        return request_headers(self.keeper.timer)

    def send_bye(self, headers: tuple[tuple[str, str], ...] = ()) -> None:
        if self.dialog is None or self.destination is None:
            return
        self.dialog, bye = self.dialog.new_request(
            "BYE", self.layer.via(self.destination), headers=headers
        )
        self.layer.send(bye, self.destination, lambda _r: None)

    @abc.abstractmethod
    def acked(self, ack: Request) -> None:
        """An ACK for a 2xx this leg's peer got from us arrived."""

    @abc.abstractmethod
    def bye_received(self, request: Request, key: TransactionKey | None) -> None:
        """The peer's BYE (`key` None: a retransmission the transaction absorbed)."""


def _replace_body(media: Media, body: bytes) -> Media:
    return attrs.evolve(media, body=body)


class SipCallerLeg(_SipLeg):
    """The customer's side (UAS): our answers to its INVITE, then the dialog."""

    def __init__(self, layer: SipCallLayer, invite: Request, key: TransactionKey, source: Address):
        super().__init__(layer)
        self.invite = invite
        self.key = key
        self.source = source
        self.destination = self._target(invite, source)
        self.tag = layer.ids.tag()
        self.side = Side.A
        self.answered = False
        self.final_sent = False
        self.cancelled = False
        self.bye_key: TransactionKey | None = None
        self.bye_request: Request | None = None
        self.ok: Response | None = None
        self.retransmit = None
        self.retransmit_interval = T1_S
        self.ack_deadline = None
        self.offered_timer: Negotiated | None = None  # RFC 4028 §9, from the INVITE
        self.allows_update = False
        self.rel = support(invite)  # RFC 3262: what the customer said about 100rel
        self.reliable: ReliableSender | None = None  # once an 18x went out reliably
        self.rel_retransmit = None
        self.rel_deadline = None
        self.rel_interval = T1_S
        self.held_answer: tuple[Media | None] | None = None  # a 2xx waiting for a PRACK

    def read_session_timer(self) -> Response | None:
        """The customer's Session-Expires/Min-SE/Supported (RFC 4028 §9): the error
        response to send instead of taking the call (400, 422), else None."""
        headers = read_timer_headers(self.invite)
        if isinstance(headers, TimerMalformed):
            return build_response(self.invite, 400, headers.reason, to_tag=self.tag)
        timer = negotiate_as_uas(headers, int(self.layer.params.snapshot.sip_session_ttl_s))
        if isinstance(timer, TooBrief):
            extra = (("Min-SE", str(timer.min_se_s)),)
            return build_response(self.invite, 422, to_tag=self.tag, headers=extra)
        self.offered_timer, self.allows_update = timer, headers.allows_update
        return None

    @staticmethod
    def _target(invite: Request, source: Address) -> Address:
        # In-dialog requests go where the INVITE came from (symmetric signalling, the
        # customer is often NATed: RFC 3581 thinking applied to the dialog).
        return source

    def attach(self, call_id: str, report: Report) -> None:
        self.call_id = call_id
        self.report = report
        self.layer.callers[call_id] = self

    # -- Leg commands ---------------------------------------------------------------

    def ring(self, early_media: Media | None) -> None:
        self._provisional(183 if early_media is not None else 180, early_media)

    def progress(self, early_media: Media | None) -> None:
        self._provisional(183, early_media)

    def _provisional(self, status: int, media: Media | None) -> None:
        if self.final_sent:
            return
        body = media.body if media is not None else b""
        response = build_response(
            self.invite,
            status,
            to_tag=self.tag,
            headers=(("Contact", self.local_contact()),),
            body=body,
            content_type=SDP if body else None,
        )
        if self.rel is Support.REQUIRED or (self.rel is Support.SUPPORTED and body):
            self._send_reliably(response, bool(body))
        else:
            self.layer.endpoint.send_response(response, self.key)

    # -- reliable provisionals (RFC 3262 §3) ------------------------------------------

    def _send_reliably(self, response: Response, has_sdp: bool) -> None:
        if self.reliable is None:
            self.reliable = ReliableSender(self.invite.cseq().number)
            # the PRACK comes in the early dialog our To tag opened
            dialog = Dialog.uas(self.invite, self.tag, self.local_contact())
            if isinstance(dialog, Dialog):
                self.dialog = dialog
                self.layer.add_dialog((dialog.call_id, self.tag), self)
        now = self.reliable.send(response, has_sdp)
        if now is not None:
            self._send_reliable_now(now)

    def _send_reliable_now(self, response: Response) -> None:
        self.layer.endpoint.send_response(response, self.key)
        self._stop_reliable_timers()
        clock = self.layer.clock
        self.rel_interval = T1_S
        self.rel_retransmit = clock.callLater(T1_S, self._retransmit_reliable)
        self.rel_deadline = clock.callLater(PRACK_WAIT_S, self._prack_timeout)

    def _retransmit_reliable(self) -> None:
        self.rel_retransmit = None
        out = self.reliable.outstanding if self.reliable is not None else None
        if out is None or self.final_sent:
            return
        self.layer.endpoint.send_response(out.response, self.key)
        self.rel_interval *= 2  # §3: doubling, no T2 cap
        self.rel_retransmit = self.layer.clock.callLater(
            self.rel_interval, self._retransmit_reliable
        )

    def _prack_timeout(self) -> None:
        self.rel_deadline = None
        if self.final_sent or self.ended or self.reliable is None:
            return
        self.log.info("call {call_id}: no PRACK for a reliable 18x", call_id=self.call_id)
        self._stop_reliable_timers()
        self.layer.engine.release(self.call_id, SESSION_TIMEOUT)

    def _stop_reliable_timers(self) -> None:
        for timer in (self.rel_retransmit, self.rel_deadline):
            if timer is not None and timer.active():
                timer.cancel()
        self.rel_retransmit = self.rel_deadline = None

    def prack_received(self, request: Request, key: TransactionKey) -> None:
        matched, following = False, None
        if self.reliable is not None and not self.final_sent:
            matched, following = self.reliable.pracked(parse_rack(request.header("rack")))
        self.layer.endpoint.send_response(build_response(request, 200 if matched else 481), key)
        if not matched:
            return
        self._stop_reliable_timers()
        if following is not None:
            self._send_reliable_now(following)
        elif self.held_answer is not None:
            (media,), self.held_answer = self.held_answer, None
            self.answer(media)

    # -- the final response -----------------------------------------------------------

    def answer(self, media: Media | None) -> None:
        if self.final_sent:
            return
        if self.reliable is not None and self.reliable.blocks_answer:
            # §3: no 2xx before the PRACK of an 18x that carried SDP; what was still
            # queued behind it is overtaken by this answer
            self.reliable.drop_queued()
            self.held_answer = (media,)
            return
        body = media.body if media is not None else b""
        response = build_response(
            self.invite,
            200,
            to_tag=self.tag,
            headers=(
                ("Contact", self.local_contact()),
                ("Allow", ALLOW),
                *(response_headers(self.offered_timer) if self.offered_timer else ()),
            ),
            body=body,
            content_type=SDP if body else None,
        )
        self.local_sdp = body
        if self.dialog is not None:  # the early dialog of a reliable 18x (its PRACKs)
            self.dialog = attrs.evolve(self.dialog, state=DialogState.CONFIRMED)
        else:
            dialog = Dialog.uas(self.invite, self.tag, self.local_contact())
            if isinstance(dialog, Dialog):
                self.dialog = attrs.evolve(dialog, state=DialogState.CONFIRMED)
                self.layer.add_dialog((dialog.call_id, self.tag), self)
        self.answered = True
        self.final(response)
        self.ok = response
        self._schedule_retransmit()
        self._arm_media_timeout()
        self.start_session(self.offered_timer, self.allows_update)

    def _arm_media_timeout(self) -> None:
        """SPEC §3 step 11 / §12: at answer the proxy starts timing the sides the
        gateways' `media_check` chose; silence ends the call with 15, direction 2."""
        session = self.layer.existing_session(self.call_id)
        peer = self.peer
        if session is None or not isinstance(peer, SipCalleeLeg) or not peer.setup.proxy_media:
            return
        session.watch(peer.setup.media_watch)
        if peer.setup.media_watch:
            call_id, engine = self.call_id, self.layer.engine
            session.on_timeout(lambda _session, _leg: engine.release(call_id, MEDIA_TIMEOUT))

    def hang_up(self, ending: Ending) -> None:
        endpoint = self.layer.endpoint
        if self.bye_key is not None and self.bye_request is not None:
            endpoint.send_response(build_response(self.bye_request, 200), self.bye_key)
            self.bye_key = None
            if not self.final_sent:  # a BYE in the early dialog (RFC 3261 §15.1.2)
                self.final(build_response(self.invite, 487, to_tag=self.tag))
            self._done()
            return
        if not self.final_sent:
            status = ending.sip_code or (487 if self.cancelled else 500)
            headers = self.layer.reason_header(ending) if status != 487 else ()
            self.final(build_response(self.invite, status, to_tag=self.tag, headers=headers))
            self._done()
            return
        if self.answered and not self.ended:
            self._stop_retransmit()
            self.send_bye(self.layer.reason_header(ending))
            self._done()

    def cancel(self) -> None:
        """Not a caller-leg command (callee legs only)."""

    def offer(self, setup: Setup) -> None:
        """Not a caller-leg command (callee legs only)."""

    # -- from the SIP side ------------------------------------------------------------

    def final(self, response: Response) -> None:
        self.final_sent = True
        if self.reliable is not None:
            self.reliable.finish()
            self._stop_reliable_timers()
        self.held_answer = None
        self.layer.endpoint.send_response(response, self.key)
        if response.status >= 300:
            self.layer.invites.pop(self.key, None)

    def peer_cancelled(self) -> None:
        if self.final_sent:
            return
        self.cancelled = True
        self.report(HungUp())

    def bye_received(self, request: Request, key: TransactionKey | None) -> None:
        self._stop_retransmit()
        if key is None:
            return
        if self.ended:
            self.layer.endpoint.send_response(build_response(request, 200), key)
            return
        self.bye_key, self.bye_request = key, request
        self.report(HungUp())

    def acked(self, ack: Request) -> None:
        self._stop_retransmit()
        self.layer.invites.pop(self.key, None)

    def ack_timeout(self) -> None:
        """No ACK for our 200 within 64*T1 (RFC 3261 §13.3.1.4): the session is dead."""
        if self.answered and not self.ended and self.ok is not None:
            self._stop_retransmit()
            self.report(HungUp())

    # -- 2xx retransmission (RFC 3261 §13.3.1.4) ----------------------------------------

    def _schedule_retransmit(self) -> None:
        clock = self.layer.clock
        self.retransmit = clock.callLater(self.retransmit_interval, self._retransmit_ok)
        self.ack_deadline = clock.callLater(ACK_WAIT_S, self.ack_timeout)

    def _retransmit_ok(self) -> None:
        self.retransmit = None
        if self.ok is None or self.ended:
            return
        destination = response_destination(self.invite.top_via(), self.source)
        self.layer.endpoint.send_stateless(self.ok, destination)
        self.retransmit_interval = min(self.retransmit_interval * 2, T2_S)
        self.retransmit = self.layer.clock.callLater(self.retransmit_interval, self._retransmit_ok)

    def _stop_retransmit(self) -> None:
        for timer in (self.retransmit, self.ack_deadline):
            if timer is not None and timer.active():
                timer.cancel()
        self.retransmit = self.ack_deadline = None

    def _done(self) -> None:
        self.ended = True
        self._stop_retransmit()
        self._stop_reliable_timers()
        self.stop_session()
        self.layer.callers.pop(self.call_id, None)
        self.layer.forget(self)
        session = self.layer.existing_session(self.call_id)
        if session is not None:
            session.close()


class SipCalleeLeg(_SipLeg):
    """One vendor attempt (UAC): our INVITE, its responses, then the dialog."""

    def __init__(self, layer: SipCallLayer, setup: Setup, report: Report):
        super().__init__(layer)
        self.setup = setup
        self.report = report
        self.call_id = setup.call_id
        self.side = Side.B
        self.invite: Request | None = None
        self.key: TransactionKey | None = None
        self.provisional = False
        self.want_cancel = False
        self.answered = False
        self.failed = False
        self.bye_key: TransactionKey | None = None
        self.bye_request: Request | None = None
        self.offered_ttl = 0  # the Session-Expires our INVITE offered (RFC 4028 §7.1)
        # RFC 3262 §4: per early dialog (To tag), its dialog (for PRACKs) and RSeq order
        self.early: dict[str, tuple[Dialog, ReliableReceiver]] = {}

    # -- Leg commands ---------------------------------------------------------------

    def offer(self, setup: Setup) -> None:
        layer = self.layer
        destination = Address("UDP", setup.target_ip, setup.target_port)
        self.destination = destination
        body = b""
        if setup.media is not None:
            body = setup.media.body
            if setup.proxy_media:
                session = layer.media_session(setup.call_id)
                if isinstance(session, PortsExhausted):
                    # SPEC §3 step 9: no RTP pair is vos3k's own refusal (5, 503,
                    # direction 2) ending the call, not a vendor 503 to fail over on.
                    self.failed = True
                    layer.engine.release(setup.call_id, session.end_reason)
                    return
                if session is not None:
                    # SPEC §4: this vendor's first RTP stops the hunt (MediaStarted).
                    session.on_first_rtp(Side.B, self._media_started)
                # the caller's offer enters the proxy on side A, whatever its protocol
                body, _ = proxied_sdp(session, Side.A, body, SDP)
        host = f"[{setup.target_ip}]" if ":" in setup.target_ip else setup.target_ip
        uri = setup.contact or f"sip:{setup.callee}@{host}:{setup.target_port}"
        local = layer.endpoint.local_address(destination)
        tag = layer.ids.tag()
        call_id = layer.ids.call_id(local.host)
        party, identity = self._identity(setup, local)
        self.offered_ttl = int(layer.params.snapshot.sip_session_ttl_s)
        headers = [
            ("Via", layer.via(destination)),
            ("Max-Forwards", "70"),
            ("From", f"{party};tag={tag}"),
            ("To", f"<sip:{setup.callee}@{host}:{setup.target_port}>"),
            ("Call-ID", call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", layer.contact(destination, setup.caller)),
            ("Allow", ALLOW),
            *identity,
            *offer_headers(self.offered_ttl),  # RFC 4028 §7.1
        ]
        if body:
            # RFC 3262: reliable 18x welcome; only with our offer in the INVITE, since a
            # reliable 18x offer would need the customer's answer in our PRACK
            headers = [
                ("Supported", f"100rel, {v}") if n == "Supported" else (n, v) for n, v in headers
            ]
        self.local_sdp = body
        if body:
            headers.append(("Content-Type", SDP))
        headers.append(("Content-Length", str(len(body))))
        self.invite = Request("INVITE", uri, tuple(headers), body)
        self.tag = tag
        layer.by_call_id[call_id] = self
        self.key = layer.send(self.invite, destination, self._invite_response)

    def cancel(self) -> None:
        if self.answered or self.failed or self.ended:
            return
        if self.provisional:
            self._send_cancel()
        else:
            self.want_cancel = True  # RFC 3261 §9.1: CANCEL only after a provisional

    def hang_up(self, ending: Ending) -> None:
        if self.bye_key is not None and self.bye_request is not None:
            self.layer.endpoint.send_response(build_response(self.bye_request, 200), self.bye_key)
            self.bye_key = None
            self._done()
        elif self.answered and not self.ended:
            self.send_bye()
            self._done()
        else:
            self.cancel()

    def ring(self, early_media: Media | None) -> None:
        """Not a callee-leg command."""

    progress = ring
    answer = ring

    # -- responses ----------------------------------------------------------------------

    def _invite_response(self, response: Response | None) -> None:
        if response is None:  # Timer B or a transport error: unreachable (SPEC §3: 21)
            if not (self.answered or self.failed):
                self.failed = True
                self.report(Failed())
            return
        status = response.status
        if status < 200:
            self._provisional(response)
        elif status < 300:
            self._answered(response)
        else:
            self.failed = True
            self._forget_call_id()
            self.report(Failed(code=status))

    def _provisional(self, response: Response) -> None:
        if is_reliable(response) and not self._prack(response):
            return  # a retransmission (our PRACK is on its way) or out of order
        first = not self.provisional
        self.provisional = True
        if self.want_cancel and first:
            self._send_cancel()
            return
        if response.status == 100:
            self.report(Proceeding())
            return
        body, media = self.incoming_sdp(response.body, response.content_type())
        if media is not None and media.body != body:
            media = _replace_body(media, body)
        if response.status == 183:
            self.report(Progress(media=media))
        else:
            self.report(Ringing(media=media, code=response.status))

    def _prack(self, response: Response) -> bool:
        """RFC 3262 §4: PRACK a vendor's reliable 18x; False to drop it unused."""
        assert self.invite is not None and self.destination is not None
        rseq = parse_rseq(response.header("rseq"))
        try:
            tag = response.to().tag or ""
        except HeaderError:
            return True
        entry = self.early.get(tag)
        if entry is None:
            dialog = Dialog.uac(self.invite, response)
            if isinstance(dialog, DialogError):  # no To tag or Contact: cannot PRACK
                self.log.warn(
                    "call {call_id}: reliable 18x without a dialog: {reason}",
                    call_id=self.call_id,
                    reason=dialog.reason,
                )
                return True
            entry = (dialog, ReliableReceiver())
        dialog, receiver = entry
        if rseq is None or receiver.accept(rseq) is not Verdict.NEW:
            self.early[tag] = entry
            return False
        rack = RAck(rseq, self.invite.cseq().number, "INVITE")
        dialog, prack = dialog.new_request(
            "PRACK", self.layer.via(self.destination), headers=(("RAck", str(rack)),)
        )
        self.early[tag] = (dialog, receiver)
        self.layer.send(prack, self.destination, None)
        return True

    def _answered(self, response: Response) -> None:
        assert self.invite is not None
        dialog = Dialog.uac(self.invite, response)
        if isinstance(dialog, DialogError):
            self.log.warn(
                "call {call_id}: unusable 2xx: {reason}", call_id=self.call_id, reason=dialog.reason
            )
            self.failed = True
            self.report(Failed(code=502))
            return
        early = self.early.pop(dialog.remote_tag, None)
        if early is not None:  # our PRACKs used CSeq numbers of this dialog already
            dialog = attrs.evolve(dialog, local_cseq=max(dialog.local_cseq, early[0].local_cseq))
        self.early.clear()
        self.dialog = dialog.on_response(response)
        self.layer.add_dialog((dialog.call_id, dialog.local_tag), self)
        self._ack(response)
        if self.answered:
            return
        self.answered = True
        if self.want_cancel or self.ended:
            self.send_bye()  # a 2xx that crossed our CANCEL: end it (RFC 3261 §15)
            self._done()
            return
        body, media = self.incoming_sdp(response.body, response.content_type())
        if media is not None and media.body != body:
            media = _replace_body(media, body)
        caller = self.layer.callers.get(self.call_id)
        if caller is not None:
            caller.peer, self.peer = self, caller
        self._start_session_as_uac(response)
        self.report(Answered(media=media))

    def _start_session_as_uac(self, response: Response) -> None:
        """RFC 4028 §7.2: the vendor's 2xx decides; an unreadable timer is no timer."""
        headers = read_timer_headers(response)
        if isinstance(headers, TimerMalformed):
            headers = TimerHeaders()
        self.start_session(negotiate_as_uac(headers, self.offered_ttl), headers.allows_update)

    def _identity(self, setup: Setup, local: Address) -> tuple[str, tuple[tuple[str, str], ...]]:
        """Our From party and the P-Asserted-Identity/Privacy for the vendor's INVITE.

        RFC 3325 §5 trust domain: a mapping gateway's PAI is trusted (the gateway is
        admitted by its address, SPEC §3 step 3), so the vendor gets PAI with the caller
        number as routed (callerToGatewayE164, which came from that PAI) and the
        customer's Privacy unchanged (RFC 3323 §4.2); an anonymous customer From stays
        anonymous.  A phone's PAI is its own claim and is not passed on."""
        own = f"<sip:{setup.caller}@{_hostport(local)}>"
        caller = self.layer.callers.get(setup.call_id) or self.layer.arriving
        call = self.layer.engine.live(setup.call_id)
        if caller is None or call is None or call.ctx.caller_gateway is None:
            return own, ()
        invite = caller.invite
        pai, privacy = invite.header("p-asserted-identity"), invite.header("privacy")
        headers = []
        if pai:
            headers.append(("P-Asserted-Identity", own))
        if privacy:
            headers.append(("Privacy", privacy))
        anonymous = user_of(invite.header("from")).lower() == "anonymous"
        return (ANONYMOUS_FROM if anonymous and pai else own), tuple(headers)

    def _ack(self, response: Response) -> None:
        if self.dialog is None or self.destination is None or self.invite is None:
            return
        ack = self.dialog.ack(self.invite.cseq().number, self.layer.via(self.destination))
        self.layer.endpoint.send_stateless(ack, self.destination)

    def reack(self, response: Response) -> None:
        if 200 <= response.status < 300:
            self._ack(response)

    def _send_cancel(self) -> None:
        if self.invite is None or self.destination is None:
            return
        self.want_cancel = False
        self.layer.send(build_cancel(self.invite), self.destination, lambda _r: None)

    def bye_received(self, request: Request, key: TransactionKey | None) -> None:
        if key is None:
            return
        if self.ended:
            self.layer.endpoint.send_response(build_response(request, 200), key)
            return
        self.bye_key, self.bye_request = key, request
        self.report(HungUp())

    def acked(self, ack: Request) -> None:
        """The vendor's ACK for our 2xx to its re-INVITE: nothing waits for it."""

    def _media_started(self) -> None:
        if not (self.failed or self.ended):
            self.report(MediaStarted())

    def _forget_call_id(self) -> None:
        if self.invite is not None:
            try:
                self.layer.by_call_id.pop(self.invite.call_id(), None)
            except HeaderError:
                pass

    def _done(self) -> None:
        self.ended = True
        self.stop_session()
        self._forget_call_id()
        self.layer.forget(self)


def install_b2bua(service: Any) -> SipCallLayer:
    """Plug the B2BUA between `service.sip` (the endpoint) and `service.engine`."""
    layer = SipCallLayer(
        service.sip,
        service.engine,
        getattr(service, "media", None),
        service.params,
        service.reactor,
        service.sip.ids,
    )
    service.sip.call_layer = layer
    service.engine.add_leg_factory("sip", layer)
    service.phone_locator = layer.locate
    service.b2bua = layer
    install_probe(service)  # SPEC §4: OPTIONS health of routing gateways
    if layer.media is not None:
        # SPEC §12: the call's RTP statistics are stored with its CDR (the `extra` JSON).
        service.engine.add_cdr_extra("media", layer.media.call_stats)
        # SPEC §12: ports freed on every end, also for calls whose caller is not SIP.
        service.engine.add_end_listener(layer.media.release)
    return layer
