"""TPKT (RFC 1006 §6) framing of H.225.0/H.245 over TCP, sans-IO."""

from __future__ import annotations

from attrs import frozen

VERSION = 3
HEADER_SIZE = 4
# RFC 1006 §6: the 16-bit length counts the 4-octet header too.
MAX_PACKET_SIZE = 0xFFFF


@frozen
class TpktMalformed:
    """The byte stream broke TPKT framing; the connection cannot resynchronise."""

    reason: str


def encode(payload: bytes) -> bytes:
    """Frame one payload (a Q.931 message or an H.245 PDU) in a TPKT header."""
    size = len(payload) + HEADER_SIZE
    if size > MAX_PACKET_SIZE:
        # Our own caller built too large a message: a bug, not the peer's fault.
        raise ValueError(f"TPKT payload of {len(payload)} octets exceeds {MAX_PACKET_SIZE}")
    return bytes((VERSION, 0)) + size.to_bytes(2, "big") + payload


class TpktReassembler:
    """Turns TCP segments, cut anywhere, into whole TPKT payloads.

    `feed()` returns the payloads completed by the new bytes, in order. A framing error
    is returned once as a `TpktMalformed` value; the stream is then dead (TPKT has no
    resynchronisation point) and later bytes are ignored, so the adapter closes the
    connection (SPEC §11: malformed input closes it).
    """

    def __init__(self, max_size: int = MAX_PACKET_SIZE) -> None:
        if not HEADER_SIZE < max_size <= MAX_PACKET_SIZE:
            raise ValueError(f"max_size must be in {HEADER_SIZE + 1}..{MAX_PACKET_SIZE}")
        self._max_size = max_size
        self._buffer = bytearray()
        self.failed: TpktMalformed | None = None
        # Peers send a header-only TPKT (length 4) as a TCP keep-alive; it carries no
        # Q.931 message, so it is counted and skipped rather than handed upwards.
        self.keepalives = 0

    @property
    def pending(self) -> int:
        """Octets held while waiting for the rest of a packet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes | TpktMalformed]:
        if self.failed is not None:
            return []
        self._buffer += data
        out: list[bytes | TpktMalformed] = []
        while len(self._buffer) >= HEADER_SIZE:
            version = self._buffer[0]
            size = int.from_bytes(self._buffer[2:4], "big")
            error = None
            if version != VERSION:
                error = f"TPKT version {version}, expected {VERSION}"
            elif size < HEADER_SIZE:
                error = f"TPKT length {size} is shorter than its own header"
            elif size > self._max_size:
                error = f"TPKT length {size} exceeds the limit of {self._max_size}"
            if error is not None:
                self.failed = TpktMalformed(error)
                self._buffer.clear()
                out.append(self.failed)
                return out
            if len(self._buffer) < size:
                break
            payload = bytes(self._buffer[HEADER_SIZE:size])
            del self._buffer[:size]
            if payload:
                out.append(payload)
            else:
                self.keepalives += 1
        return out
