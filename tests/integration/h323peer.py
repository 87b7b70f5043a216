"""A small blocking-socket H.323 endpoint for integration tests, on vos3k's own codecs.

It plays the customer's gateway (`place_call`: Setup with fast start G.711, then waits
for Connect) or the vendor's (`VendorGateway.answer`: Call Proceeding, Alerting, Connect
accepting fast start), sends and echoes RTP, registers over RAS and releases. Every
message vos3k sends it is kept in `PeerLog` so a test can hand them to tshark.
"""

from __future__ import annotations

import socket
import struct
import time

from attrs import define, field

from vos3k.h323 import h225, h245, media, q931, ras, tpkt
from vos3k.h323.h225 import Alias, AliasKind, Body, Codec, TransportAddress, UserInformation
from vos3k.h323.q931 import MessageType

WAIT_S = 10.0


@define
class PeerLog:
    """What vos3k sent: Q.931 TPKT payloads (call signalling) and RAS datagrams."""

    q931: list[bytes] = field(factory=list)
    ras: list[bytes] = field(factory=list)


class RtpEnd:
    """One UDP RTP socket: send numbered G.711 packets, count and echo what arrives."""

    def __init__(self, host: str) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.address = TransportAddress(host, self.sock.getsockname()[1])
        self.seq = 0

    def send(self, to: TransportAddress, count: int, pt: int = 0, marker: bytes = b"vos3k") -> None:
        for _ in range(count):
            self.seq += 1
            header = struct.pack("!BBHII", 0x80, pt, self.seq, self.seq * 160, 0x1234ABCD)
            self.sock.sendto(header + marker + bytes(155), (to.host, to.port))
            time.sleep(0.02)

    def receive(self, seconds: float) -> list[tuple[bytes, tuple[str, int]]]:
        deadline = time.monotonic() + seconds
        got = []
        while time.monotonic() < deadline:
            try:
                got.append(self.sock.recvfrom(2048))
            except TimeoutError:
                continue
        return got

    def echo(self, seconds: float) -> int:
        """Send every packet back where it came from (what SIPp's -rtp_echo does)."""
        count = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data, source = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            self.sock.sendto(data, source)
            count += 1
        return count

    def close(self) -> None:
        self.sock.close()


class Connection:
    """One call-signalling TCP connection (one call), as either side."""

    def __init__(self, sock: socket.socket, log: PeerLog, call_reference: int, caller: bool):
        self.sock = sock
        self.sock.settimeout(WAIT_S)
        self.log = log
        self.call_reference = call_reference
        self.from_destination = not caller  # Q.931 call reference flag
        self.reassembler = tpkt.TpktReassembler()
        self.inbox: list[bytes] = []
        self.h245_seen: list[h245.H245Message] = []
        self.call_identifier = b"P" * 16
        self.conference_id = b"Q" * 16

    # -- sending --------------------------------------------------------------------

    def send(self, message_type: MessageType, info: UserInformation, *ies: object) -> None:
        user_user = q931.UserUser(h225.encode_user_information(info))
        message = q931.Message(
            message_type, self.call_reference, self.from_destination, (*ies, user_user)
        )
        self.sock.sendall(tpkt.encode(q931.encode(message)))

    def info(self, body: Body, **fields: object) -> UserInformation:
        return UserInformation(body, call_identifier=self.call_identifier, **fields)

    def release(self, cause: int = 16) -> None:
        self.send(MessageType.RELEASE_COMPLETE, self.info(Body.RELEASE_COMPLETE), q931.Cause(cause))

    def send_digit(self, digit: str, duration_ms: int = 160) -> None:
        """UserInputIndication signal, tunnelled in a Facility (H.245 §6, H.323 §10.5)."""
        pdu = h245.encode(h245.UserInput(signal=digit, duration_ms=duration_ms))
        info = self.info(
            Body.FACILITY, conference_id=self.conference_id, h245_tunnelling=True,
            h245_control=(pdu,), facility_reason="transportedInformation",
        )  # fmt: skip
        self.send(MessageType.FACILITY, info)

    # -- receiving ------------------------------------------------------------------

    def receive(self, seconds: float = WAIT_S) -> q931.Message | None:
        """The next Q.931 message, None when the connection closed or time ran out."""
        deadline = time.monotonic() + seconds
        while not self.inbox:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, ConnectionResetError):
                return None
            if not data:
                return None
            self.inbox += [p for p in self.reassembler.feed(data) if isinstance(p, bytes)]
        payload = self.inbox.pop(0)
        self.log.q931.append(payload)
        message = q931.parse(payload)
        assert not isinstance(message, q931.Malformed), message
        uuie = uuie_of(message)
        if uuie is not None:
            for pdu in uuie.h245_control:
                parsed = h245.parse(pdu)
                if not isinstance(parsed, h245.Malformed):
                    self.h245_seen.append(parsed)
        return message

    def wait_for(self, *types: MessageType, seconds: float = WAIT_S) -> list[q931.Message]:
        """Messages up to and including the first of `types` (fails on a timeout)."""
        got: list[q931.Message] = []
        deadline = time.monotonic() + seconds
        while True:
            message = self.receive(max(0.0, deadline - time.monotonic()))
            assert message is not None, f"no {types} within {seconds} s; got {got}"
            got.append(message)
            if message.message_type in types:
                return got

    def closed(self, seconds: float = 5.0) -> bool:
        """True when vos3k closes the connection within `seconds` (nothing else comes)."""
        return self.receive(seconds) is None

    def close(self) -> None:
        self.sock.close()


def uuie_of(message: q931.Message) -> UserInformation | None:
    if message.user_user is None:
        return None
    info = h225.parse_user_information(message.user_user)
    return None if isinstance(info, h225.Malformed) else info


def cause_of(message: q931.Message) -> int | None:
    cause = message.find(q931.Cause)
    return None if cause is None else cause.value


def answer_address(messages: list[q931.Message]) -> TransportAddress | None:
    """Where vos3k wants our RTP: the TRANSMIT channel of its fast start answer."""
    for message in messages:
        info = uuie_of(message)
        if info is None or not info.fast_start:
            continue
        channels = media.decode_channels(info.fast_start)
        assert not isinstance(channels, h225.Malformed), channels
        answer = media.answer_from_fast_start(channels)
        if answer is not None:
            return TransportAddress(answer.address, answer.port)
    return None


def place_call(
    server: tuple[str, int],
    source_ip: str,
    caller: str,
    callee: str,
    rtp: RtpEnd,
    log: PeerLog,
    codecs: tuple[Codec, ...] = (Codec.G711_ULAW, Codec.G711_ALAW),
    fast_start: bool = True,
) -> Connection:
    """Connect from `source_ip` and send a Setup (fast start for `rtp`, tunnelling on)."""
    sock = socket.create_connection(server, timeout=WAIT_S, source_address=(source_ip, 0))
    connection = Connection(sock, log, call_reference=4242, caller=True)
    info = connection.info(
        Body.SETUP, conference_id=connection.conference_id,
        source_aliases=(Alias(AliasKind.DIALED_DIGITS, caller),),
        destination_aliases=(Alias(AliasKind.DIALED_DIGITS, callee),),
        fast_start=h225.fast_start_offer(codecs, rtp.address) if fast_start else (),
        h245_tunnelling=True, conference_goal="create",
    )  # fmt: skip
    connection.send(
        MessageType.SETUP, info, q931.BearerCapability(),
        q931.CallingPartyNumber(caller, presentation=0, screening=0),
        q931.CalledPartyNumber(callee),
    )  # fmt: skip
    return connection


@define
class Offered:
    """A Setup vos3k sent to the vendor gateway."""

    connection: Connection
    setup: q931.Message
    info: UserInformation
    proposals: tuple[h225.FastStartChannel, ...]

    @property
    def rtp(self) -> TransportAddress | None:
        """vos3k's RTP address from its fast start RECEIVE proposal."""
        for channel in self.proposals:
            if channel.direction is h225.Direction.RECEIVE and channel.media_channel:
                return channel.media_channel
        return None

    @property
    def callee(self) -> str:
        called = self.setup.find(q931.CalledPartyNumber)
        return "" if called is None else called.digits


class VendorGateway:
    """A listening H.323 gateway that answers vos3k's Setups."""

    def __init__(self, host: str, port: int, log: PeerLog) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(4)
        self.listener.settimeout(WAIT_S)
        self.address = TransportAddress(host, self.listener.getsockname()[1])
        self.log = log

    def accept(self, seconds: float = WAIT_S) -> Offered:
        self.listener.settimeout(seconds)
        sock, _ = self.listener.accept()
        connection = Connection(sock, self.log, call_reference=0, caller=False)
        setup = connection.receive()
        assert setup is not None and setup.message_type == MessageType.SETUP, setup
        connection.call_reference = setup.call_reference
        info = uuie_of(setup)
        assert info is not None
        connection.call_identifier = info.call_identifier or connection.call_identifier
        connection.conference_id = info.conference_id or connection.conference_id
        channels = media.decode_channels(info.fast_start)
        assert not isinstance(channels, h225.Malformed), channels
        return Offered(connection, setup, info, channels)

    def answer(self, offered: Offered, rtp: RtpEnd, codec: Codec = Codec.G711_ULAW) -> None:
        """Call Proceeding, Alerting, Connect accepting fast start for `rtp`."""
        connection = offered.connection
        accepted = media.accept_fast_start(offered.proposals, media.Offer(rtp.address, (codec,)))
        assert accepted is not None, offered.proposals
        connection.send(MessageType.CALL_PROCEEDING, connection.info(Body.CALL_PROCEEDING))
        connection.send(MessageType.ALERTING, connection.info(Body.ALERTING))
        connection.send(
            MessageType.CONNECT,
            connection.info(
                Body.CONNECT, conference_id=connection.conference_id, fast_start=accepted,
                h245_tunnelling=offered.info.h245_tunnelling,
            ),
        )  # fmt: skip

    def refuse(self, offered: Offered, cause: int) -> None:
        connection = offered.connection
        connection.send(MessageType.CALL_PROCEEDING, connection.info(Body.CALL_PROCEEDING))
        connection.release(cause)

    def close(self) -> None:
        self.listener.close()


class RasClient:
    """The endpoint's RAS socket: RRQ, ARQ, DRQ to the gatekeeper."""

    def __init__(self, host: str, gatekeeper: tuple[str, int], log: PeerLog) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(WAIT_S)
        self.address = TransportAddress(host, self.sock.getsockname()[1])
        self.gatekeeper = gatekeeper
        self.log = log
        self.seq = 0
        self.sent: list[bytes] = []  # the RAS datagrams this client sent (for tshark)

    def request(self, kind: ras.RasKind, **fields: object) -> ras.RasMessage:
        self.seq += 1
        data = ras.encode(ras.RasMessage(kind, self.seq, **fields))
        self.sent.append(data)
        self.sock.sendto(data, self.gatekeeper)
        data, _ = self.sock.recvfrom(4096)
        self.log.ras.append(data)
        reply = ras.parse(data)
        assert not isinstance(reply, ras.Malformed), reply
        assert reply.seq == self.seq
        return reply

    def register_phone(
        self, alias: str, password: str, signal_port: int = 1720, timestamp: int | None = None
    ) -> ras.RasMessage:
        """A full RRQ as phone `alias`, with the H.235 cryptoEPPwdHash token H323Plus's
        H235AuthSimpleMD5 sends (alias as dialledDigits, UTC seconds, MD5 over the
        ClearToken PER: ras.pwd_hash_digest)."""
        now = int(time.time()) if timestamp is None else timestamp
        name = Alias(AliasKind.DIALED_DIGITS, alias)
        token = ras.PwdHash(name, now, ras.pwd_hash_digest(alias, password, now))
        return self.request(
            ras.RasKind.RRQ, aliases=(name,), ras_addresses=(self.address,),
            call_signal_addresses=(TransportAddress(self.address.host, signal_port),),
            crypto_tokens=(token,),
        )  # fmt: skip

    def close(self) -> None:
        self.sock.close()
