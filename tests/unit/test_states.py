"""The transition tables, checked pair by pair against the lifecycle written out here.

The expected edges below are the specification: a change to ``domain/states.py`` that adds or
removes a transition must change this list too, on purpose.
"""

from __future__ import annotations

import itertools
from enum import StrEnum

import pytest

from llmbatch.domain.states import (
    BATCH_TRANSITIONS,
    ITEM_TRANSITIONS,
    JOB_TRANSITIONS,
    BatchStatus,
    ItemStatus,
    JobStatus,
    can_transition,
    check_transition,
    is_terminal,
    sources_of,
)
from llmbatch.errors import ConflictError, InvalidTransition

ALLOWED: dict[type[StrEnum], set[str]] = {
    JobStatus: {
        "pending -> running", "pending -> cancelling", "pending -> cancelled",
        "pending -> failed",
        "running -> cancelling", "running -> succeeded", "running -> completed_with_failures",
        "running -> cancelled", "running -> failed",
        "cancelling -> cancelled",
    },
    BatchStatus: {
        "planned -> submitting", "planned -> cancelled",
        "submitting -> planned", "submitting -> in_progress", "submitting -> failed",
        "submitting -> cancelled",
        "in_progress -> cancelling", "in_progress -> ended",
        "cancelling -> ended",
        "ended -> fetched",
    },
    ItemStatus: {
        "pending -> queued", "pending -> cancelled", "pending -> failed",
        "queued -> pending", "queued -> submitted", "queued -> failed", "queued -> cancelled",
        "submitted -> pending", "submitted -> succeeded", "submitted -> failed",
        "submitted -> cancelled", "submitted -> expired",
    },
}
TERMINAL: dict[type[StrEnum], set[str]] = {
    JobStatus: {"succeeded", "completed_with_failures", "cancelled", "failed"},
    BatchStatus: {"fetched", "failed", "cancelled"},
    ItemStatus: {"succeeded", "failed", "cancelled", "expired"},
}
INITIAL = {JobStatus: JobStatus.PENDING, BatchStatus: BatchStatus.PLANNED,
           ItemStatus: ItemStatus.PENDING}
TABLES = {JobStatus: JOB_TRANSITIONS, BatchStatus: BATCH_TRANSITIONS,
          ItemStatus: ITEM_TRANSITIONS}
ENUMS = list(TABLES)

PAIRS = [pytest.param(a, b, id=f"{enum.__name__}:{a}->{b}")
         for enum in ENUMS for a, b in itertools.product(enum, repeat=2)]
STATUSES = [pytest.param(s, id=f"{type(s).__name__}:{s}") for enum in ENUMS for s in enum]


@pytest.mark.parametrize(("current", "target"), PAIRS)
def test_each_pair_is_allowed_exactly_when_the_lifecycle_says_so(current: StrEnum,
                                                                 target: StrEnum) -> None:
    allowed = f"{current} -> {target}" in ALLOWED[type(current)]

    assert can_transition(current, target) is allowed
    if allowed:
        check_transition(current, target)
    else:
        with pytest.raises(InvalidTransition, match=f"{current} -> {target}"):
            check_transition(current, target)


def test_the_expected_edges_name_real_statuses() -> None:
    for enum, edges in ALLOWED.items():
        for edge in edges:
            a, b = edge.split(" -> ")
            enum(a), enum(b)  # raises ValueError on a typo


@pytest.mark.parametrize("enum", ENUMS, ids=lambda e: e.__name__)
def test_every_status_has_a_row_in_its_table(enum: type[StrEnum]) -> None:
    assert set(TABLES[enum]) == set(enum)


@pytest.mark.parametrize("status", STATUSES)
def test_terminal_statuses_have_no_exits(status: StrEnum) -> None:
    terminal = str(status) in TERMINAL[type(status)]

    assert is_terminal(status) is terminal
    if terminal:
        assert TABLES[type(status)][status] == frozenset()
        assert not any(can_transition(status, t) for t in type(status))


@pytest.mark.parametrize("status", STATUSES)
def test_sources_of_is_the_inverse_of_the_table(status: StrEnum) -> None:
    table = TABLES[type(status)]
    expected = {s for s, targets in table.items() if status in targets}

    assert sources_of(status) == expected
    assert all(can_transition(s, status) for s in sources_of(status))


@pytest.mark.parametrize("enum", ENUMS, ids=lambda e: e.__name__)
def test_every_status_is_reachable_and_every_path_can_end(enum: type[StrEnum]) -> None:
    table = TABLES[enum]
    reachable = {INITIAL[enum]}
    frontier = [INITIAL[enum]]
    while frontier:
        for nxt in table[frontier.pop()]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert reachable == set(enum)

    can_end = {s for s in enum if is_terminal(s)}
    changed = True
    while changed:
        before = len(can_end)
        can_end |= {s for s in enum if table[s] & can_end}
        changed = len(can_end) != before
    assert can_end == set(enum)


def test_a_status_never_moves_to_a_status_of_another_enum() -> None:
    assert not can_transition(JobStatus.PENDING, ItemStatus.QUEUED)
    assert not can_transition(ItemStatus.PENDING, BatchStatus.CANCELLED)
    # Same value, different enums: still not a transition.
    assert not can_transition(JobStatus.RUNNING, BatchStatus.CANCELLED)
    with pytest.raises(InvalidTransition):
        check_transition(BatchStatus.IN_PROGRESS, JobStatus.CANCELLED)


def test_invalid_transition_is_a_conflict() -> None:
    with pytest.raises(ConflictError, match="JobStatus: succeeded -> running"):
        check_transition(JobStatus.SUCCEEDED, JobStatus.RUNNING)
