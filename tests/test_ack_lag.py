"""AckLag: what a DHCP agent reports as how far it is behind (issue 17)."""

from __future__ import annotations

from dhcp_driver.ack_lag import AckLag


def test_oldest_unacked_change_or_slowest_ack_in_the_window() -> None:
    lag = AckLag()
    assert lag.report(at=100.0) == 0.0  # nothing owed: up to date
    lag.received("a", 1, at=100.0)
    lag.received("a", 2, at=101.0)  # a second change: still owed since the first
    lag.received("b", 1, at=102.0)
    assert lag.report(at=103.0) == 3.0
    lag.acked([("a", 1)], at=103.5)  # an older revision: a is still owed
    assert lag.report(at=103.5) == 3.5
    lag.acked([("a", 2)], at=104.0)  # took 4 s: the slowest of this window
    assert lag.report(at=104.5) == 4.0
    assert lag.report(at=105.0) == 3.0  # new window: b, owed since 102
    lag.acked([("b", 1), ("unknown", 7)], at=105.0)
    assert lag.report(at=106.0) == 3.0  # b's acknowledgement took 3 s
    assert lag.report(at=107.0) == 0.0


def test_deleted_and_unlisted_ports_are_owed_nothing() -> None:
    lag = AckLag()
    for port in ("a", "b", "c"):
        lag.received(port, 1, at=10.0)
    lag.forget("a", 2)
    lag.received("a", 1, at=12.0)  # late news of the deleted port: owed nothing
    lag.keep_only(["c"])
    lag.acked([("c", 1)], at=11.0)
    assert lag.report(at=50.0) == 1.0
    assert lag.report(at=60.0) == 0.0


def test_a_stale_change_after_its_ack_is_owed_nothing() -> None:
    """The worker ignores (never acknowledges) a revision older than one it holds."""
    lag = AckLag()
    lag.received("a", 3, at=1.0)
    lag.acked([("a", 3)], at=1.5)
    lag.received("a", 2, at=2.0)
    assert lag.report(at=9.0) == 0.5
    assert lag.report(at=10.0) == 0.0
