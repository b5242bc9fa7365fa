"""The spilled duplicate check (``validate`` / ``--dry-run``): every line that repeats an
earlier id is named, in line order, however far apart the two lines are."""

from __future__ import annotations

from llmbatch.service_layer.duplicate_ids import SpilledIds


def named(ids: SpilledIds) -> list[tuple[int | None, str]]:
    return [(p.line, p.message) for p in ids.problems("in.jsonl")]


def test_repeats_are_named_in_line_order_across_flushes() -> None:
    with SpilledIds() as ids:
        for line in range(1, 12_001):  # more than one chunk of pending rows
            ids.add(line, f"id-{line % 10_000}", f"id-{line % 10_000}")
        found = named(ids)
    assert len(found) == 2_000
    assert found[:2] == [(10_001, "duplicate custom_id 'id-1'"),
                         (10_002, "duplicate custom_id 'id-2'")]
    assert [line for line, _ in found] == sorted(line for line, _ in found)


def test_a_provider_key_two_ids_map_to_is_named_once() -> None:
    with SpilledIds() as ids:
        ids.add(1, "A", "a")
        ids.add(2, "a", "a")        # another id, same key
        ids.add(3, "A", "a")        # a repeated id: named as such, not for its key too
        ids.add(4, "b", None)       # not encoded: no key of it goes to the provider
        ids.add(5, "B", "b")
        assert named(ids) == [(2, "two lines map to the provider id 'a'"),
                              (3, "duplicate custom_id 'A'")]


def test_keys_equal_to_their_ids_need_no_key_check() -> None:
    with SpilledIds() as ids:
        ids.add(1, "x", "x")
        ids.add(2, "y", "y")
        assert named(ids) == []
