"""Moving a Twisted timer without Twisted's linear search.

`DelayedCall.reset()` to a later time is O(1) (the reactor re-sorts it lazily), but to a
sooner time it runs `ReactorBase._moveCallLaterSooner`, a `list.index` over every
pending timer: with 10,000 calls up (tens of thousands of timers) that one search cost
more than handling the SIP message that moved the timer.  `reschedule` resets later
timers in place and replaces sooner ones (cancel is O(1); callLater is a heap push).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def reschedule(
    clock: Any, timer: Any, delay_s: float, function: Callable[..., object], *args: Any
) -> Any:
    """`timer` (an active DelayedCall calling `function(*args)`) moved to fire in
    `delay_s` seconds; returns the DelayedCall to keep (the same one, or a new one)."""
    if clock.seconds() + delay_s >= timer.getTime():
        timer.reset(delay_s)
        return timer
    timer.cancel()
    return clock.callLater(delay_s, function, *args)
