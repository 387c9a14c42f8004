"""Positions read off JetStream reply subjects, in both of their layouts."""

from __future__ import annotations

from jobstream.streams.wire import reply_delivery, reply_position

V1 = "$JS.ACK.WORK.c1.3.1042.17.1796305240810192300.55"
V2 = "$JS.ACK.hub.ACCHASH.WORK.c1.3.1042.17.1796305240810192300.55.token"


def test_both_layouts_give_the_same_positions() -> None:
    for reply in (V1, V2, V2.rsplit(".", 1)[0]):
        assert reply_position(reply) == (1042, 55)  # stream sequence, pending
        assert reply_delivery(reply) == (1042, 3)  # stream sequence, times delivered


def test_other_subjects_are_not_read() -> None:
    assert reply_position("_INBOX.abc.1") is None
    assert reply_delivery("") is None
