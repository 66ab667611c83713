"""When the refresh timer recomputes a changed day (services/analytics/pacing.py)."""

from services.analytics.pacing import MAX_DAYS_REMEMBERED, RefreshPacer

MAX_DELAY = 300.0


def test_a_day_first_seen_is_due_at_once():
    assert RefreshPacer().due("2026-03-01", 7, now=0.0, max_delay_s=MAX_DELAY)


def test_a_day_that_changes_on_every_tick_waits_for_the_max_delay_then_is_due():
    pacer = RefreshPacer()
    pacer.recomputed("2026-03-01", 1, now=0.0)
    due_at = [
        t
        for t, changes in zip(range(5, 400, 5), range(2, 1000), strict=False)
        if pacer.due("2026-03-01", changes, now=float(t), max_delay_s=MAX_DELAY)
    ]
    assert due_at[0] == 300


def test_a_day_that_went_quiet_is_due_at_the_next_tick():
    pacer = RefreshPacer()
    pacer.recomputed("2026-03-01", 1, now=0.0)
    assert not pacer.due("2026-03-01", 4, now=5.0, max_delay_s=MAX_DELAY)  # still changing
    assert pacer.due("2026-03-01", 4, now=10.0, max_delay_s=MAX_DELAY)  # as at the last tick


def test_no_delay_recomputes_every_changed_day_on_every_tick():
    pacer = RefreshPacer()
    pacer.recomputed("2026-03-01", 1, now=0.0)
    assert pacer.due("2026-03-01", 2, now=0.1, max_delay_s=0)


def test_days_are_paced_each_on_its_own():
    pacer = RefreshPacer()
    pacer.recomputed("2026-03-01", 1, now=0.0)
    assert not pacer.due("2026-03-01", 2, now=5.0, max_delay_s=MAX_DELAY)
    assert pacer.due("2026-03-02", 2, now=5.0, max_delay_s=MAX_DELAY)


def test_the_memory_is_bounded():
    pacer = RefreshPacer()
    for day in range(MAX_DAYS_REMEMBERED + 10):
        pacer.recomputed(str(day), 1, now=0.0)
    assert len(pacer.seen) <= MAX_DAYS_REMEMBERED
