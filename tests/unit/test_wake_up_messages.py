"""How a tick turns due batches into task messages: one id per message while few are due,
ids spread over a bounded number of messages when many are."""

from __future__ import annotations

from collections import Counter

import pytest

from llmbatch.domain.states import BatchStatus
from llmbatch.service_layer import tasks
from llmbatch.service_layer.scheduler import wake_up_messages


def due(count: int, status: BatchStatus) -> list[tuple[str, BatchStatus]]:
    return [(f"{status}-{n}", status) for n in range(count)]


def test_few_due_batches_get_one_message_each() -> None:
    messages = wake_up_messages(due(3, BatchStatus.PLANNED) + due(2, BatchStatus.ENDED), 200)
    assert sorted((task, len(ids)) for task, ids in messages) == [
        (tasks.FETCH, 1), (tasks.FETCH, 1), (tasks.SUBMIT, 1), (tasks.SUBMIT, 1),
        (tasks.SUBMIT, 1)]


@pytest.mark.parametrize("count", [201, 1_000, 10_000])
def test_many_due_batches_share_a_bounded_number_of_messages_and_none_is_lost(
        count: int) -> None:
    batches = due(count, BatchStatus.IN_PROGRESS) + due(50, BatchStatus.CANCELLING)
    messages = wake_up_messages(batches, 200)
    assert {task for task, _ in messages} == {tasks.POLL}
    assert len(messages) == 200
    named = Counter(batch_id for _, ids in messages for batch_id in ids)
    assert set(named) == {batch_id for batch_id, _ in batches}
    assert set(named.values()) == {1}, "a batch named twice would be polled twice"
    sizes = [len(ids) for _, ids in messages]
    assert max(sizes) - min(sizes) <= 1, f"uneven messages: {min(sizes)}..{max(sizes)}"
