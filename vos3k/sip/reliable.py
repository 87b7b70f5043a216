"""Reliable provisional responses (RFC 3262, 100rel/PRACK): the bookkeeping, sans-IO.

The B2BUA (b2bua.py) does 100rel hop by hop: each leg negotiates it with its own peer.

- `support(invite)`: what the peer's INVITE says about 100rel (`Require`, `Supported`,
  or nothing).
- `ReliableSender` is the UAS side (our 18x to a customer): it numbers reliable
  provisionals with RSeq (a random start, then +1, §3), holds back the next one until
  the previous one is PRACKed (§3: one unacknowledged reliable provisional at a time),
  matches a PRACK's RAck and says whether a 2xx must wait (an unacknowledged one carried
  SDP, §3).  The leg owns the retransmission timer (T1 doubling for 64*T1).
- `ReliableReceiver` is the UAC side (a vendor's 18x to our INVITE), one per early
  dialog: an 18x is new (PRACK it and use it), a retransmission (drop it: our PRACK
  transaction has it in hand) or out of order (drop it unacknowledged, §4).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable

from attrs import frozen

from vos3k.sip.message import Request, Response

__all__ = [
    "RAck",
    "ReliableReceiver",
    "ReliableSender",
    "Support",
    "Verdict",
    "parse_rack",
    "parse_rseq",
    "support",
]

TAG = "100rel"
RSEQ_MAX = 2**31 - 1  # §3: the first RSeq is 1..2**31-1, leaving room to count up


class Support(enum.Enum):
    """What a request says about 100rel."""

    NONE = "none"
    SUPPORTED = "supported"
    REQUIRED = "required"


def support(message: Request) -> Support:
    if TAG in {v.lower() for v in message.values("require")}:
        return Support.REQUIRED
    if TAG in {v.lower() for v in message.values("supported")}:
        return Support.SUPPORTED
    return Support.NONE


def is_reliable(response: Response) -> bool:
    """An 18x sent reliably (§4: Require: 100rel with an RSeq)."""
    return (
        100 < response.status < 200
        and TAG in {v.lower() for v in response.values("require")}
        and parse_rseq(response.header("rseq")) is not None
    )


def parse_rseq(value: str | None) -> int | None:
    """RSeq: 1*DIGIT, 1..2**32-1 (§7.1); None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value.isdigit() or len(value) > 10:
        return None
    number = int(value)
    return number if 0 < number < 2**32 else None


@frozen
class RAck:
    """§7.2: `RAck: response-num CSeq-num Method`."""

    rseq: int
    cseq: int
    method: str

    def __str__(self) -> str:
        return f"{self.rseq} {self.cseq} {self.method}"


def parse_rack(value: str | None) -> RAck | None:
    if value is None:
        return None
    parts = value.split()
    if len(parts) != 3:
        return None
    rseq = parse_rseq(parts[0])
    cseq = parts[1]
    if rseq is None or not cseq.isdigit() or len(cseq) > 10:
        return None
    return RAck(rseq, int(cseq), parts[2])


@frozen
class _Outstanding:
    rseq: int
    response: Response
    has_sdp: bool


class ReliableSender:
    """The UAS side of one INVITE transaction (§3)."""

    def __init__(self, invite_cseq: int, first_rseq: Callable[[], int] | None = None):
        self._cseq = invite_cseq
        self._next = (first_rseq or (lambda: random.randint(1, RSEQ_MAX)))()
        self.outstanding: _Outstanding | None = None
        self._queue: list[tuple[Response, bool]] = []

    @property
    def blocks_answer(self) -> bool:
        """§3: no 2xx while an unacknowledged reliable provisional carried SDP."""
        return self.outstanding is not None and self.outstanding.has_sdp

    def send(self, response: Response, has_sdp: bool) -> Response | None:
        """`response` (an 18x) made reliable: the message to send now, or None when it
        waits behind an unacknowledged one (it goes out from `pracked`)."""
        if self.outstanding is not None:
            self._queue.append((response, has_sdp))
            return None
        return self._number(response, has_sdp)

    def _number(self, response: Response, has_sdp: bool) -> Response:
        rseq, self._next = self._next, self._next + 1
        headers = (*response.headers, ("Require", TAG), ("RSeq", str(rseq)))
        reliable = Response(response.status, response.reason, headers, response.body)
        self.outstanding = _Outstanding(rseq, reliable, has_sdp)
        return reliable

    def pracked(self, rack: RAck | None) -> tuple[bool, Response | None]:
        """A PRACK arrived: (it matches the unacknowledged provisional -> 200, else 481;
        the next held-back provisional to send now, if any)."""
        out = self.outstanding
        if (
            rack is None
            or out is None
            or (rack.rseq, rack.cseq, rack.method.upper()) != (out.rseq, self._cseq, "INVITE")
        ):
            return False, None
        self.outstanding = None
        if self._queue:
            response, has_sdp = self._queue.pop(0)
            return True, self._number(response, has_sdp)
        return True, None

    def drop_queued(self) -> None:
        """A 2xx overtakes the provisionals still held back."""
        self._queue.clear()

    def finish(self) -> None:
        """The final response went out: nothing more is sent reliably (§3)."""
        self.outstanding = None
        self._queue.clear()


class Verdict(enum.Enum):
    NEW = "new"  # PRACK it, then use it
    RETRANSMISSION = "retransmission"  # already PRACKed: drop
    OUT_OF_ORDER = "out of order"  # not the next one: drop without a PRACK (§4)


class ReliableReceiver:
    """The UAC side for one early dialog (one To tag) of our INVITE (§4)."""

    def __init__(self) -> None:
        self.last: int | None = None

    def accept(self, rseq: int) -> Verdict:
        if self.last is None:
            self.last = rseq
            return Verdict.NEW
        if rseq <= self.last:
            return Verdict.RETRANSMISSION
        if rseq != self.last + 1:
            return Verdict.OUT_OF_ORDER
        self.last = rseq
        return Verdict.NEW
