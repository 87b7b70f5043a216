"""The protocol-neutral leg interface and the events legs report to a call (STYLE §2).

A leg is one side of a call as one protocol sees it: the caller leg is the customer's
INVITE/Setup, a callee leg is one vendor attempt (an INVITE/Setup vos3k sends). SIP and
H.323 both implement `Leg`; the switching core (`switch/call.py`) only ever sees the
commands below and the events at the bottom, so SIP<->H.323 is a call with one leg of
each kind. SIP status codes and Q.850 causes are both carried as plain data.

Commands (switch -> leg):
- `offer(setup)`: callee legs only; send the INVITE/Setup described by `setup`.
- `ring(early_media)` / `progress(early_media)`: caller leg only; relay 180 / 183
  (H.323: Alerting / Progress), with the vendor's media when it sent any.
- `answer(media)`: caller leg only; 200 OK / Connect with the media to use.
- `hang_up(ending)`: end the leg with `ending`. Before the leg was answered this is
  the final failure (SIP status `ending.sip_code`, H.323 cause `ending.q850`); after,
  a BYE / Release Complete. On a leg whose peer already ended it (BYE, CANCEL) it
  completes that ending instead: 200 to the BYE, 487 to the cancelled INVITE.
- `cancel()`: callee legs only, before their final response; abandon the attempt
  (SIP CANCEL once a provisional arrived, RFC 3261 §9.1; H.323 Release Complete).
- `send_dtmf(dtmf)`: either leg; relay a digit the other leg reported (SPEC §11: SIP
  INFO application/dtmf-relay <-> H.323 UserInputIndication).

Events (leg -> switch), each a frozen value with an `.input` (STYLE §5):
`Proceeding`, `Ringing`, `Progress`, `Answered`, `Failed`, `HungUp`, `MediaStarted`.
`Dtmf` is reported the same way but never reaches the call core: the engine hands it
to the other leg's `send_dtmf`.
"""

from __future__ import annotations

import enum
from typing import Protocol

from attrs import field, frozen

from vos3k.media.policy import Leg as MediaLeg
from vos3k.switch.reasons import EndReason

# ---------------------------------------------------------------- values


@frozen
class Media:
    """A session description, opaque to the switch (SDP bytes, or H.245 fast start).

    The protocol layer that parsed it passes the small summary the switch needs:
    `address` (SDP c= / RTP address) for SPEC §12's NAT test and `direction`
    (sendrecv, sendonly, recvonly, inactive) for the media timeout.
    """

    body: bytes = b""
    content_type: str = "application/sdp"
    address: str = ""
    port: int = 0
    codecs: tuple[str, ...] = ()
    direction: str = "sendrecv"


@frozen
class Setup:
    """What a callee leg is asked to offer: the numbers and target of one attempt."""

    call_id: str  # the switch's call id (a log and CDR key, never a SIP Call-ID)
    attempt: int  # 1 for the first attempt of the call, then 2, 3, ...
    caller: str  # callerToGatewayE164 (SPEC §7 field 14)
    callee: str  # calleeToGatewayE164 (field 15)
    target_ip: str
    target_port: int
    protocol: str  # "sip" | "h323": the routing gateway's (or phone's) protocol
    gateway: str = ""  # routing gateway name; "" for a registered phone
    contact: str = ""  # a registered phone's Contact URI (SPEC §3 step 9)
    media: Media | None = None  # the caller's offer
    proxy_media: bool = True  # SPEC §12: the media layer relays this call
    # SPEC §12 media timeout: the sides (media.policy.Leg A = caller, B = callee) whose
    # RTP the proxy times, from both gateways' `media_check`; empty = none.
    media_watch: frozenset[MediaLeg] = frozenset()


@frozen
class Ending:
    """How a leg is ended: the end reason and what the wire carries for it (SPEC §8)."""

    reason: EndReason = field(converter=EndReason)
    sip_code: int | None  # final status before answer; None = BYE (answered)
    q850: int  # cause for an H.323 leg (Release Complete)


# ---------------------------------------------------------------- the interface


class Leg(Protocol):
    """What SIP and H.323 legs implement (see the module docstring for semantics)."""

    def offer(self, setup: Setup) -> None: ...

    def ring(self, early_media: Media | None) -> None: ...

    def progress(self, early_media: Media | None) -> None: ...

    def answer(self, media: Media | None) -> None: ...

    def hang_up(self, ending: Ending) -> None: ...

    def cancel(self) -> None: ...

    def send_dtmf(self, dtmf: Dtmf) -> None: ...


# ---------------------------------------------------------------- events


class LegInput(enum.Enum):
    """What a leg can report; with the side it came from, a call's table input."""

    PROCEEDING = "proceeding"  # 100 Trying / Call Proceeding
    RINGING = "ringing"  # 180 without media / Alerting
    EARLY_MEDIA = "early_media"  # 18x with media / Progress with fast start
    ANSWERED = "answered"  # 200 OK / Connect
    FAILED = "failed"  # final failure before answer, or unreachable
    HUNG_UP = "hung_up"  # CANCEL or BYE / Release Complete from this leg's peer
    MEDIA_STARTED = "media_started"  # the media layer saw this leg's first RTP


@frozen
class Proceeding:
    """SIP 100 Trying / H.323 Call Proceeding: starts the session-progress timer (§4)."""

    input = LegInput.PROCEEDING


@frozen
class Ringing:
    """SIP 180 / H.323 Alerting; with `media` it is early media (18x with SDP)."""

    media: Media | None = None
    code: int = 180

    @property
    def input(self) -> LegInput:
        return LegInput.RINGING if self.media is None else LegInput.EARLY_MEDIA


@frozen
class Progress:
    """SIP 183 / H.323 Progress; with `media`, early media (SPEC §4 SDP timer)."""

    media: Media | None = None
    code: int = 183

    @property
    def input(self) -> LegInput:
        return LegInput.RINGING if self.media is None else LegInput.EARLY_MEDIA


@frozen
class Answered:
    """SIP 200 OK / H.323 Connect."""

    media: Media | None = None
    input = LegInput.ANSWERED


@frozen
class Failed:
    """The attempt ended before answer: a SIP status, or a Q.850 cause, or neither.

    Neither means unreachable (transport error, ICMP, TCP refused): SPEC §3 treats it
    like a timer, reason 21 with 408 for the caller.
    """

    code: int | None = None  # SIP 300-699
    cause: int | None = None  # Q.850 1-127 (H.323 Release Complete)
    input = LegInput.FAILED


@frozen
class HungUp:
    """The leg's peer ended it: CANCEL before answer, BYE / Release Complete after.

    `cause` is an H.323 peer's Q.850 cause (kept for logs; after answer any release
    is reason 1, SPEC §8 table 2b).
    """

    cause: int | None = None
    input = LegInput.HUNG_UP


@frozen
class MediaStarted:
    """The first RTP from this leg (SS_GATEWAY_SWITCH_STOP_AFTER_RTP_START, SPEC §4)."""

    input = LegInput.MEDIA_STARTED


@frozen
class Dtmf:
    """A DTMF digit from the leg's peer (0-9, *, #, A-D), relayed to the other leg by the
    engine (SPEC §11 UserInputIndication <-> INFO); not a call-state input."""

    digit: str
    duration_ms: int = 100


LegEvent = Proceeding | Ringing | Progress | Answered | Failed | HungUp | MediaStarted
