"""vos3k/reschedule.py: timers move without Twisted's linear search, and fire once."""

from __future__ import annotations

from twisted.internet.task import Clock

from vos3k.reschedule import reschedule


def test_later_in_place_sooner_replaced_and_fired_once():
    clock = Clock()
    fired: list[float] = []
    timer = clock.callLater(10, lambda tag: fired.append((tag, clock.seconds())), "t")
    later = reschedule(clock, timer, 20, lambda tag: fired.append((tag, clock.seconds())), "t")
    assert later is timer and later.getTime() == 20
    sooner = reschedule(clock, later, 5, lambda tag: fired.append((tag, clock.seconds())), "t")
    assert sooner is not later and not later.active() and sooner.getTime() == 5
    clock.advance(5)
    assert fired == [("t", 5)]
    clock.advance(30)
    assert fired == [("t", 5)]  # the replaced timer never fires


def test_the_same_deadline_keeps_the_timer():
    clock = Clock()
    timer = clock.callLater(3, lambda: None)
    assert reschedule(clock, timer, 3, lambda: None) is timer
