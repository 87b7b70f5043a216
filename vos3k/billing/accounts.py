"""Prepaid and overdraft money: balances, live reservations, covered time (SPEC §6).

Rules (SPEC §6), for every account type alike:
- available = balance + credit − Σ r(c) over the account's live calls;
- admission reserves R0 = per-minute fee × ADVANCE_TIME, else end reason 8;
- covered time T is the largest whole-second talk, on a billing boundary, whose
  fee (SPEC §5) is ≤ r(c); a fee of 0 means no limit;
- at answer and each whole second of talk, if T − talk ≤ 30 × ADVANCE_TIME s,
  r(c) += min(R0, available) and T is recomputed;
- at talk = T the call is cut (reason 24) and its billed seconds are capped at T;
- at the end the fee is charged and r(c) released; the balance delta goes to the
  CDR writer, which commits it with the CDR.
So each fee ≤ its reservation, Σ r ≤ balance + credit, and the balance never goes
below −credit. Pure: calls drive it with talk seconds; it reads no clock.
"""

from __future__ import annotations

from decimal import Decimal

from attrs import define, field, frozen

from vos3k.billing.rating import BillingSettings, Rate, amount, fee, reservation_chunk
from vos3k.switch.reasons import EndReason

ZERO = Decimal("0")
# SPEC §6: extend when at most 30 s per ADVANCE_TIME minute of cover is left.
EXTEND_WINDOW_S_PER_ADVANCE_MIN = 30


@frozen
class Admitted:
    """The call may go on; `covered_s` None means no time limit."""

    reserved: Decimal
    covered_s: int | None


@frozen
class Refused:
    """SPEC §6: the reservation is not covered (reason 8, 403, direction 2)."""

    available: Decimal
    needed: Decimal
    reason: EndReason = EndReason.BALANCE_INSUFFICIENT


@frozen
class Coverage:
    """A live call's money after answer/tick."""

    reserved: Decimal
    covered_s: int | None  # T in talk seconds; None = no limit
    cut: bool  # talk reached T: end now, reason 24, direction 2
    next_tick_s: int | None  # the talk second of the next tick() that can change anything


@frozen
class Settlement:
    """A call's end: what the CDR carries and the balance change to commit with it."""

    account: str
    billed_seconds: int
    fee: Decimal
    balance_delta: Decimal  # −fee when charged, else 0
    released: Decimal  # the reservation given back
    capped: bool  # the hold ran past T and billing stopped at T


@frozen
class AccountView:
    """`account show`: committed balance, credit, Σ reservations, what is left."""

    name: str
    balance: Decimal
    credit: Decimal
    reserved: Decimal
    available: Decimal
    live_calls: int


@define
class _Account:
    balance: Decimal
    credit: Decimal
    reserved: Decimal = ZERO
    calls: set[str] = field(factory=set)

    @property
    def available(self) -> Decimal:
        return self.balance + self.credit - self.reserved


@define
class _Call:
    account: str
    rate: Rate
    settings: BillingSettings
    chunk: Decimal  # R0
    reserved: Decimal
    covered_s: int | None
    limited: bool  # False: callee pays without SERVER_PHONE_AS_CALLEE_MONEY_VERIFY
    answered: bool = False


def covered_seconds(reserved: Decimal, rate: Rate, settings: BillingSettings) -> int | None:
    """SPEC §6: the largest whole-second talk on a billing boundary whose fee ≤ reserved.

    Talk T covers billed seconds T − free time; billed boundaries are 0, f, f + k × period.
    Rounding can make many boundaries cost the same, so the search is exact (exponential
    then binary search over k), not an estimate from the unrounded price.
    """
    if rate.fee == 0:
        return None
    first, period = rate.first_s, rate.period_s

    def fits(k: int) -> bool:
        return amount(rate.fee, first + k * period, settings) <= reserved

    if not fits(0):
        return settings.free_time_s
    low, high = 0, 1  # fits(low) holds; find a high that does not
    while fits(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    return settings.free_time_s + first + low * period


class AccountPool:
    """Every account's money and every live call's reservation, in memory."""

    def __init__(self) -> None:
        self._accounts: dict[str, _Account] = {}
        self._calls: dict[str, _Call] = {}

    # -- accounts -----------------------------------------------------------------

    def set_account(self, name: str, balance: Decimal, credit: Decimal) -> None:
        """Load or refresh an account's committed balance and credit; live calls stay."""
        if credit < 0:
            raise ValueError(f"credit of {name!r} is negative: {credit}")
        account = self._accounts.get(name)
        if account is None:
            self._accounts[name] = _Account(balance, credit)
        else:
            account.balance, account.credit = balance, credit

    def remove_account(self, name: str) -> bool:
        """Forget an account; refused (False) while it has live calls."""
        account = self._accounts.get(name)
        if account is None or account.calls:
            return False
        del self._accounts[name]
        return True

    def adjust_balance(self, name: str, delta: Decimal) -> Decimal:
        """Apply a committed change (recharge, `cdr modify`); returns the new balance."""
        account = self._accounts[name]
        account.balance += delta
        return account.balance

    def view(self, name: str) -> AccountView:
        """The account as `account show` reports it."""
        a = self._accounts[name]
        return AccountView(name, a.balance, a.credit, a.reserved, a.available, len(a.calls))

    def available(self, name: str) -> Decimal:
        """balance + credit − Σ reservations of its live calls."""
        return self._accounts[name].available

    def __contains__(self, name: str) -> bool:
        return name in self._accounts

    def names(self) -> list[str]:
        """The accounts loaded so far."""
        return list(self._accounts)

    # -- calls --------------------------------------------------------------------

    def admit(
        self,
        call_id: str,
        account: str,
        rate: Rate,
        settings: BillingSettings,
        *,
        verify: bool = True,
    ) -> Admitted | Refused:
        """SPEC §6 admission: reserve R0 or refuse.

        `verify=False` is a callee-pays call with SERVER_PHONE_AS_CALLEE_MONEY_VERIFY=0:
        nothing reserved, never cut, charged at the end all the same.
        """
        if call_id in self._calls:
            raise ValueError(f"call {call_id!r} already holds a reservation")
        holder = self._accounts[account]
        chunk = reservation_chunk(rate, settings)
        if not verify:
            call = _Call(account, rate, settings, chunk, ZERO, None, limited=False)
        else:
            if holder.available < chunk:
                return Refused(holder.available, chunk)
            covered = covered_seconds(chunk, rate, settings)
            call = _Call(account, rate, settings, chunk, chunk, covered, limited=True)
        self._calls[call_id] = call
        holder.calls.add(call_id)
        holder.reserved += call.reserved
        return Admitted(call.reserved, call.covered_s)

    def answer(self, call_id: str) -> Coverage:
        """SPEC §6: the call is answered; the first extension check runs at talk 0."""
        self._calls[call_id].answered = True
        return self.tick(call_id, 0)

    def tick(self, call_id: str, talk_s: int) -> Coverage:
        """SPEC §6: the check at whole second `talk_s` of talk (extend, then cut at T).

        Calling it every second or only at each `next_tick_s` gives the same result:
        between those seconds nothing can change.
        """
        call = self._calls[call_id]
        if not call.answered:
            raise ValueError(f"call {call_id!r} is not answered")
        if not call.limited or call.covered_s is None:
            return Coverage(call.reserved, None, False, None)
        window = EXTEND_WINDOW_S_PER_ADVANCE_MIN * call.settings.advance_time_min
        if call.covered_s - talk_s <= window:
            holder = self._accounts[call.account]
            extra = min(call.chunk, holder.available)
            if extra > 0:
                call.reserved += extra
                holder.reserved += extra
                call.covered_s = covered_seconds(call.reserved, call.rate, call.settings)
        covered = call.covered_s
        assert covered is not None  # a rate with fee > 0 always has a limit
        if talk_s >= covered:
            return Coverage(call.reserved, covered, True, None)
        next_tick = min(covered, max(talk_s + 1, covered - window))
        return Coverage(call.reserved, covered, False, next_tick)

    def end(self, call_id: str, hold_ms: int, *, charge: bool = True) -> Settlement:
        """SPEC §6 end: release the reservation and, if `charge`, charge the fee.

        `charge=False` when the CDR policy leaves no CDR or bills nothing (SPEC §7).
        The in-memory balance changes now; the returned delta is committed with the CDR.
        """
        call = self._calls.pop(call_id)
        holder = self._accounts[call.account]
        holder.calls.discard(call_id)
        holder.reserved -= call.reserved
        if not charge:
            nothing = amount(ZERO, 0, call.settings)
            return Settlement(call.account, 0, nothing, ZERO, call.reserved, False)
        capped = False
        if not call.answered:
            hold_ms = 0
        elif call.limited and call.covered_s is not None and hold_ms > 1000 * call.covered_s:
            # SPEC §6 cut-off: it pays exactly what it was covered for.
            hold_ms, capped = 1000 * call.covered_s, True
        charged = fee(hold_ms, call.rate, call.settings)
        holder.balance -= charged.amount
        return Settlement(
            call.account,
            charged.billed_seconds,
            charged.amount,
            ZERO - charged.amount,  # not -amount: no "-0.00" in a CDR transaction
            call.reserved,
            capped,
        )

    def reservation(self, call_id: str) -> Decimal:
        """What a live call holds now."""
        return self._calls[call_id].reserved

    def live_calls(self, account: str) -> frozenset[str]:
        """Call ids holding money on `account`."""
        return frozenset(self._accounts[account].calls)
