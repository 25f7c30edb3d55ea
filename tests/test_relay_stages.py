"""The lean relay's exchange stages and the fate of its runner connection, as tables.

The behaviour behind them runs through real sockets in test_relay.py and test_proxy.py;
here the tables themselves are pinned, so a new move or a changed rule is a visible edit.
"""

from __future__ import annotations

import itertools

import pytest

from adapter.http.relay import (
    TRANSITIONS,
    Fate,
    Stage,
    StageError,
    check_transition,
    runner_connection_fate,
)

C, S, W, R, D = Stage.CONNECTING, Stage.SENDING, Stage.WAITING, Stage.RELAYING, Stage.DONE
# Every move an exchange may make, and why.
ALLOWED = {
    (C, S): "a runner connection is attached; the body is still coming",
    (C, W): "a runner connection is attached with the whole request",
    (C, D): "the connect failed, or the client left or timed out while connecting",
    (S, W): "the last body byte went to the runner",
    (S, R): "the runner answered before the upload ended",
    (S, D): "the runner connection broke, or the client left or stalled mid-upload",
    (W, R): "the answer head arrived and was relayed",
    (W, C): "the pooled connection was stale: resent once on a fresh one",
    (W, D): "failed, timed out or the client left before any answer",
    (R, D): "the answer ended, or broke mid-body",
}


@pytest.mark.parametrize(("old", "new"), sorted(ALLOWED), ids=lambda s: s.name)
def test_every_allowed_transition(old: Stage, new: Stage) -> None:
    """Each move in the table is allowed."""
    check_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [pair for pair in itertools.product(Stage, Stage) if pair not in ALLOWED],
    ids=lambda s: s.name,
)
def test_every_other_transition_raises(old: Stage, new: Stage) -> None:
    """Any move outside the table (staying put, going back, leaving DONE) raises."""
    with pytest.raises(StageError, match=f"{old.name} -> {new.name}"):
        check_transition(old, new)


def test_the_table_is_the_relays() -> None:
    """TRANSITIONS is exactly ALLOWED: nothing more, nothing less."""
    relay = {(old, new) for old, targets in TRANSITIONS.items() for new in targets}
    assert relay == set(ALLOWED)
    assert set(TRANSITIONS) == set(Stage)


@pytest.mark.parametrize(
    ("request_sent", "in_step", "abandoned", "closed", "fate"),
    [
        (True, True, False, False, Fate.RELEASE),
        (True, True, False, True, Fate.CLOSE),  # the runner closed it meanwhile
        (True, False, False, False, Fate.CLOSE),  # out of step, nothing abandoned
        (True, False, True, False, Fate.ABORT),  # client left / timed out / answer broke
        (False, True, False, False, Fate.ABORT),  # the runner answered before the upload ended
        (False, False, False, False, Fate.ABORT),
        (False, False, True, True, Fate.ABORT),
    ],
)
def test_runner_connection_fate(
    request_sent: bool, in_step: bool, abandoned: bool, closed: bool, fate: Fate
) -> None:
    """Release only an in-step connection whose request went out whole; reset one whose
    request was abandoned or cut short; close the rest."""
    assert (
        runner_connection_fate(
            request_sent=request_sent, in_step=in_step, abandoned=abandoned, closed=closed
        )
        is fate
    )
