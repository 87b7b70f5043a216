"""SPEC §12 media decisions: proxy or not, which sides the media timeout watches."""

from __future__ import annotations

import enum
import ipaddress

from attrs import frozen


class ProxyMode(enum.Enum):
    """A gateway's `media_proxy` (SPEC §2); DEFAULT defers to SS_MEDIAPROXYMODE."""

    OFF = "off"
    ON = "on"
    AUTO = "auto"
    MUST_ON = "must_on"
    DEFAULT = "default"


class MediaCheck(enum.Enum):
    """A gateway's `media_check` (SPEC §2): which RTP of that gateway's leg is watched.

    rx = the RTP vos3k receives from that gateway, tx = the RTP vos3k transmits to it
    (which is what the other side sends).
    """

    NONE = "none"
    RX = "rx"
    TX = "tx"
    BOTH = "both"


class Leg(enum.Enum):
    """A = the caller side of the call, B = the callee side."""

    A = "a"
    B = "b"


OTHER = {Leg.A: Leg.B, Leg.B: Leg.A}


@frozen
class LegMedia:
    """What the decision needs to know about one leg."""

    mode: ProxyMode
    sdp_ip: str | None  # the SDP c= address, None while not known (late offer)
    signal_ip: str  # the source address of the leg's signalling


# RFC 6598 shared address space (carrier-grade NAT); Python's is_private leaves it out.
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


def looks_natted(sdp_ip: str | None, signal_ip: str) -> bool:
    """SPEC §12: the SDP address is private or differs from the signalling source.

    An unknown or hold (0.0.0.0, RFC 3264 §8.4) address says nothing either way.
    """
    if sdp_ip is None:
        return False
    try:
        address = ipaddress.ip_address(sdp_ip)
    except ValueError:
        return sdp_ip != signal_ip  # an FQDN in c=: only the comparison is possible
    if address.is_unspecified:
        return False
    if address.is_private or address in _CGNAT:
        return True
    return sdp_ip != signal_ip


def resolve(mode: ProxyMode, default: str | ProxyMode) -> ProxyMode:
    """`default` → SS_MEDIAPROXYMODE (whose own values never include default)."""
    if mode is not ProxyMode.DEFAULT:
        return mode
    resolved = ProxyMode(default) if isinstance(default, str) else default
    return ProxyMode.ON if resolved is ProxyMode.DEFAULT else resolved


def should_proxy(a: LegMedia, b: LegMedia, default: str | ProxyMode) -> bool:
    """SPEC §12, in its order: must_on wins, then off, then on, else auto on NAT."""
    modes = {resolve(a.mode, default), resolve(b.mode, default)}
    if ProxyMode.MUST_ON in modes:
        return True
    if ProxyMode.OFF in modes:
        return False
    if ProxyMode.ON in modes:
        return True
    return looks_natted(a.sdp_ip, a.signal_ip) or looks_natted(b.sdp_ip, b.signal_ip)


_WATCHES_OWN = frozenset({MediaCheck.RX, MediaCheck.BOTH})
_WATCHES_OTHER = frozenset({MediaCheck.TX, MediaCheck.BOTH})


def watched_legs(a_check: MediaCheck, b_check: MediaCheck) -> frozenset[Leg]:
    """SPEC §12 'a side chosen by media_check': the legs whose incoming RTP is timed.

    A leg's rx watches what that leg sends; its tx watches what the other leg sends.
    """
    watched = set()
    for leg, check in ((Leg.A, a_check), (Leg.B, b_check)):
        if check in _WATCHES_OWN:
            watched.add(leg)
        if check in _WATCHES_OTHER:
            watched.add(OTHER[leg])
    return frozenset(watched)


class Direction(enum.Enum):
    """SDP a= direction attribute of a leg's own SDP (RFC 3264 §5.1)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"


def should_send(direction: Direction, ip: str) -> bool:
    """SPEC §12: a side sends with sendrecv/sendonly; hold (recvonly, inactive, 0.0.0.0)
    pauses the media timeout."""
    if direction not in (Direction.SENDRECV, Direction.SENDONLY):
        return False
    try:
        return not ipaddress.ip_address(ip).is_unspecified
    except ValueError:
        return True
