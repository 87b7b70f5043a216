"""RFC 3261 §10.3 registrar: an in-memory binding table updated by REGISTER, sans-IO."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from email.utils import formatdate

from attrs import define, field, frozen

__all__ = [
    "DEFAULT_EXPIRES_S",
    "WILDCARD",
    "Binding",
    "ContactSpec",
    "RegisterResult",
    "Registrar",
    "contact_key",
]

DEFAULT_EXPIRES_S = 600  # SPEC §2 phone: Expires absent -> 600 s
WILDCARD = "*"  # RFC 3261 §10.2.2: Contact: * removes all bindings
_MAX_DELTA_S = 2**32 - 1  # RFC 3261 §20.19: larger values are taken as this

_PHRASES = {200: "OK", 400: "Bad Request", 423: "Interval Too Brief", 500: "Server Internal Error"}


@frozen
class ContactSpec:
    """One Contact value of a REGISTER: its URI (no angle brackets) and expires param."""

    uri: str
    expires: str | None = None  # the raw `expires` contact parameter, if any


@frozen
class Binding:
    """An address-of-record bound to a contact (RFC 3261 §10.2); persisted by store/."""

    aor: str
    contact: str
    expires_at_ms: int
    call_id: str
    cseq: int
    registered_ms: int  # when last added or refreshed; "newest" binding = largest
    source: str = ""  # where the REGISTER came from (e.g. "udp:192.0.2.1:5060"), for NAT

    def remaining_s(self, now_ms: int) -> int:
        """Seconds left, rounded up, as the Contact expires param of a 200 says it."""
        return max(0, -((now_ms - self.expires_at_ms) // 1000))

    def is_live(self, now_ms: int) -> bool:
        return now_ms < self.expires_at_ms


@frozen
class RegisterResult:
    """What to answer a REGISTER: status, reason phrase, headers to add, the AOR's bindings.

    `bindings` holds the AOR's live bindings after the request (also for errors, which
    change nothing); store/ persists by replacing the AOR's rows with them when `changed`.
    """

    status: int
    phrase: str
    detail: str  # for logs
    headers: tuple[tuple[str, str], ...] = ()
    bindings: tuple[Binding, ...] = ()
    changed: bool = False


def contact_key(uri: str) -> str:
    """A comparison key for contact URIs, after RFC 3261 §19.1.4.

    Scheme and host compare case-insensitively, user case-sensitively, parameters in any
    order and case; a default port is not the same as an absent one (§19.1.4).
    """
    text = uri.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    scheme, sep, rest = text.partition(":")
    if not sep:
        return text.lower()
    rest, qmark, headers = rest.partition("?")
    address, *params = rest.split(";")
    userinfo, at, hostport = address.rpartition("@")
    params_key = ";".join(sorted(p.lower() for p in params if p))
    return f"{scheme.lower()}:{userinfo}{at}{hostport.lower()};{params_key}{qmark}{headers}"


def _delta_seconds(text: str) -> int | None:
    """RFC 3261 §25.1 delta-seconds = 1*DIGIT; None if not that."""
    text = text.strip()
    if not text or not text.isascii() or not text.isdigit():
        return None
    return min(int(text), _MAX_DELTA_S)


@define
class Registrar:
    """Bindings per address-of-record (the phone's E.164), kept in memory."""

    max_bindings_per_aor: int = 10
    _table: dict[str, dict[str, Binding]] = field(factory=dict)
    _expiry_heap: list[tuple[int, str, str]] = field(factory=list)

    # -- REGISTER --------------------------------------------------------------

    def register(
        self,
        *,
        aor: str,
        contacts: Sequence[ContactSpec],
        expires_header: str | None,
        call_id: str,
        cseq: int,
        now_ms: int,
        min_expires_s: int,
        max_expires_s: int,
        source: str = "",
    ) -> RegisterResult:
        """Apply one authenticated, authorised REGISTER for `aor` (RFC 3261 §10.3 step 7-8).

        `min_expires_s`/`max_expires_s` are the live SS_SIP_REGISTER_MIN_EXPIRES and
        SS_SIP_REGISTER_MAX_EXPIRES. All changes apply together or not at all (§10.3).
        """
        current = self._live(aor, now_ms)
        header_expires = None
        if expires_header is not None:
            header_expires = _delta_seconds(expires_header)
            if header_expires is None:
                return self._reply(400, "bad Expires header", aor, now_ms)
        if any(c.uri.strip() == WILDCARD for c in contacts):
            return self._remove_all(aor, contacts, header_expires, call_id, cseq, now_ms)

        plan: list[tuple[str, ContactSpec, int]] = []
        too_brief = False
        for spec in contacts:
            if spec.expires is not None:
                requested = _delta_seconds(spec.expires)
                if requested is None:
                    return self._reply(400, "bad Contact expires", aor, now_ms)
            elif header_expires is not None:
                requested = header_expires
            else:
                # SPEC §2: absent -> 600 s; the server's own choice stays inside its limits.
                requested = min(max(DEFAULT_EXPIRES_S, min_expires_s), max_expires_s)
            # RFC 3261 §10.3 step 7: > 0 and below the minimum -> 423 with Min-Expires
            too_brief = too_brief or 0 < requested < min_expires_s
            plan.append((contact_key(spec.uri), spec, min(requested, max_expires_s)))
        if too_brief:
            return self._reply(
                423,
                "expires below minimum",
                aor,
                now_ms,
                headers=(("Min-Expires", str(min_expires_s)),),
            )

        updated = dict(current)
        for key, spec, expires_s in plan:
            existing = updated.get(key)
            if existing is not None and existing.call_id == call_id and cseq <= existing.cseq:
                # RFC 3261 §10.3 step 7: same Call-ID, CSeq not higher -> abort, request fails
                return self._reply(500, "out-of-order CSeq", aor, now_ms)
            if expires_s == 0:
                updated.pop(key, None)
                continue
            updated[key] = Binding(
                aor=aor,
                contact=spec.uri.strip().removeprefix("<").removesuffix(">"),
                expires_at_ms=now_ms + expires_s * 1000,
                call_id=call_id,
                cseq=cseq,
                registered_ms=now_ms,
                source=source,
            )
        while len(updated) > self.max_bindings_per_aor:
            # Bounded per AOR: a phone that re-registers from new NAT ports keeps working;
            # the least recently refreshed binding goes.
            oldest = min(updated, key=lambda k: updated[k].registered_ms)
            del updated[oldest]
        changed = updated != self._table.get(aor, {})  # expired leftovers also count
        self._store(aor, updated)
        return self._reply(200, "ok", aor, now_ms, changed=changed)

    def _remove_all(
        self,
        aor: str,
        contacts: Sequence[ContactSpec],
        header_expires: int | None,
        call_id: str,
        cseq: int,
        now_ms: int,
    ) -> RegisterResult:
        # RFC 3261 §10.3 step 7: "*" only alone and with Expires: 0, else 400
        if len(contacts) != 1 or header_expires != 0 or contacts[0].expires is not None:
            return self._reply(400, "wildcard needs Expires: 0 and no other contact", aor, now_ms)
        current = self._live(aor, now_ms)
        for binding in current.values():
            if binding.call_id == call_id and cseq <= binding.cseq:
                return self._reply(500, "out-of-order CSeq", aor, now_ms)
        changed = bool(self._table.get(aor))
        self._store(aor, {})
        return self._reply(200, "ok", aor, now_ms, changed=changed)

    def _reply(
        self,
        status: int,
        detail: str,
        aor: str,
        now_ms: int,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        changed: bool = False,
    ) -> RegisterResult:
        bindings = self.bindings(aor, now_ms)
        if status == 200:
            # RFC 3261 §10.3 step 8: all current bindings, each with its expires; and a Date
            headers = (
                *(("Contact", f"<{b.contact}>;expires={b.remaining_s(now_ms)}") for b in bindings),
                ("Date", formatdate(now_ms // 1000, usegmt=True)),
            )
        return RegisterResult(status, _PHRASES[status], detail, headers, bindings, changed)

    # -- table -----------------------------------------------------------------

    def bindings(self, aor: str, now_ms: int) -> tuple[Binding, ...]:
        """The AOR's live bindings, oldest registration first."""
        live = self._live(aor, now_ms).values()
        return tuple(sorted(live, key=lambda b: b.registered_ms))

    def lookup(self, aor: str, now_ms: int) -> Binding | None:
        """The newest live binding of `aor` (SPEC §3 step 9: route to it), or None."""
        live = self.bindings(aor, now_ms)
        return live[-1] if live else None

    def remove_aor(self, aor: str) -> tuple[Binding, ...]:
        """Drop every binding of `aor` (the phone was deleted or disabled)."""
        return tuple(self._table.pop(aor, {}).values())

    def purge(self, now_ms: int) -> list[Binding]:
        """Remove expired bindings; return them so store/ can delete their rows."""
        removed: list[Binding] = []
        while self._expiry_heap and self._expiry_heap[0][0] <= now_ms:
            expires_at, aor, key = heapq.heappop(self._expiry_heap)
            binding = self._table.get(aor, {}).get(key)
            if binding is not None and binding.expires_at_ms == expires_at:
                removed.append(binding)
                self._drop(aor, key)
        return removed

    def next_deadline_ms(self) -> int | None:
        """When the next binding expires (the adapter calls purge then)."""
        while self._expiry_heap:
            expires_at, aor, key = self._expiry_heap[0]
            binding = self._table.get(aor, {}).get(key)
            if binding is not None and binding.expires_at_ms == expires_at:
                return expires_at
            heapq.heappop(self._expiry_heap)  # superseded by a refresh or removal
        return None

    def export(self, now_ms: int) -> tuple[Binding, ...]:
        """Every live binding, for store/ to persist."""
        return tuple(b for aor in list(self._table) for b in self.bindings(aor, now_ms))

    def load(self, bindings: Iterable[Binding], now_ms: int) -> int:
        """Restore persisted bindings after a restart; expired ones are skipped.

        Of two bindings for the same AOR and contact the later registration wins.
        Returns how many were taken.
        """
        taken = 0
        for binding in bindings:
            if not binding.is_live(now_ms):
                continue
            table = dict(self._table.get(binding.aor, {}))
            key = contact_key(binding.contact)
            existing = table.get(key)
            if existing is not None and existing.registered_ms > binding.registered_ms:
                continue
            table[key] = binding
            self._store(binding.aor, table)
            taken += 1
        return taken

    # -- internals ---------------------------------------------------------------

    def _live(self, aor: str, now_ms: int) -> dict[str, Binding]:
        table = self._table.get(aor, {})
        return {k: b for k, b in table.items() if b.is_live(now_ms)}

    def _store(self, aor: str, table: dict[str, Binding]) -> None:
        old = self._table.get(aor, {})
        if table:
            self._table[aor] = table
        else:
            self._table.pop(aor, None)
        for key, binding in table.items():
            if old.get(key) != binding:
                heapq.heappush(self._expiry_heap, (binding.expires_at_ms, aor, key))
        # Refreshes leave superseded heap entries behind; rebuild before they pile up.
        live_count = sum(len(t) for t in self._table.values())
        if len(self._expiry_heap) > 4 * live_count + 64:
            self._expiry_heap = [
                (b.expires_at_ms, a, k) for a, t in self._table.items() for k, b in t.items()
            ]
            heapq.heapify(self._expiry_heap)

    def _drop(self, aor: str, key: str) -> None:
        table = self._table.get(aor)
        if table is None:
            return
        table.pop(key, None)
        if not table:
            del self._table[aor]
