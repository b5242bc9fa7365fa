"""The pure rules behind provider limits: token estimates, token-aware packing, the shape of
the calls-per-minute bucket and the submission gate."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta

import pytest

from llmbatch.domain.limits import WaitReason, bucket_shape, submission_block
from llmbatch.domain.models import RequestLine
from llmbatch.domain.planning import BatchPlan, ItemTooLarge, pack_items
from llmbatch.domain.tokens import estimate_tokens

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def chat(text: str, **body: object) -> RequestLine:
    return RequestLine(index=0, custom_id="a", body={
        "messages": [{"role": "user", "content": text}], "max_tokens": 500, **body})


def test_a_token_is_four_characters_of_text_plus_message_framing() -> None:
    assert estimate_tokens(chat("x" * 400)) == 100 + 4 + 3


def test_output_tokens_do_not_count_because_the_quota_counts_prompt_tokens() -> None:
    assert estimate_tokens(chat("hello", max_tokens=100_000)) == estimate_tokens(chat("hello"))


def test_system_prompts_tools_and_text_parts_count_but_images_and_names_do_not() -> None:
    parts = RequestLine(index=0, custom_id="a", body={"messages": [
        {"role": "system", "content": "s" * 40},
        {"role": "user", "content": [
            {"type": "text", "text": "t" * 40},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 10_000}},
        ]}], "model": "m" * 400})
    assert estimate_tokens(parts) == 20 + 2 * 4 + 3


def test_native_bodies_are_estimated_from_their_text_too() -> None:
    native = RequestLine(index=0, custom_id="a", body=None, native={
        "contents": [{"role": "user", "parts": [{"text": "y" * 80}]}]})
    assert estimate_tokens(native) == 20 + 4 + 3


def test_packing_closes_a_batch_before_the_token_limit_is_passed() -> None:
    items = [(i, 10, 40) for i in range(5)]
    plans = list(pack_items(items, max_requests=100, max_bytes=10**6, max_tokens=100))
    assert plans == [BatchPlan(0, 1, 2, 22, 80), BatchPlan(2, 3, 2, 22, 80),
                     BatchPlan(4, 4, 1, 11, 40)]
    assert all(p.token_count <= 100 for p in plans)


def test_an_item_over_the_token_limit_alone_cannot_be_packed() -> None:
    with pytest.raises(ItemTooLarge) as info:
        list(pack_items([(0, 10, 5), (1, 10, 101)], max_requests=10, max_bytes=1000,
                        max_tokens=100))
    assert (info.value.seq, info.value.size, info.value.unit) == (1, 101, "estimated tokens")
    assert str(pickle.loads(pickle.dumps(info.value))) == str(info.value)


@pytest.mark.parametrize("per_minute", [2, 10, 60, 600, 10_000])
def test_the_bucket_admits_no_more_than_the_cap_in_any_minute(per_minute: int) -> None:
    shape = bucket_shape(per_minute)
    # Full bucket at the start of the window, refilled at the rate for 60 s.
    assert shape.capacity + shape.rate_per_s * 60 == pytest.approx(per_minute)
    assert shape.rate_per_s > 0


def test_a_call_never_costs_more_than_the_bucket_holds() -> None:
    assert bucket_shape(10).charge(3) == 1.0
    assert bucket_shape(600).charge(3) == 3.0


def gate(**overrides: object) -> object:
    args: dict[str, object] = {"batch_tokens": 50, "tokens_in_flight": 0, "token_limit": 100,
                               "batches_in_flight": 0, "max_batches_in_flight": None,
                               "hold_until": None, "now": NOW}
    args.update(overrides)
    return submission_block(**args)  # type: ignore[arg-type]


def test_a_batch_goes_when_the_quota_has_room_for_all_of_it() -> None:
    assert gate(tokens_in_flight=50) is None
    assert gate(token_limit=None, tokens_in_flight=10**9) is None


def test_a_batch_waits_when_it_would_overflow_the_quota() -> None:
    block = gate(tokens_in_flight=51)
    assert getattr(block, "reason", None) is WaitReason.ENQUEUED_TOKENS
    assert getattr(block, "detail", None) == {"tokens_in_flight": 51, "batch_tokens": 50,
                                              "enqueued_token_limit": 100}


def test_a_batch_waits_for_a_free_place_among_batches_in_flight() -> None:
    assert gate(batches_in_flight=1, max_batches_in_flight=2) is None
    block = gate(batches_in_flight=2, max_batches_in_flight=2)
    assert getattr(block, "reason", None) is WaitReason.BATCHES_IN_FLIGHT


def test_a_recent_token_limit_failure_holds_submissions_until_the_hold_ends() -> None:
    block = gate(hold_until=NOW + timedelta(seconds=1))
    assert getattr(block, "reason", None) is WaitReason.QUOTA_HOLD
    assert gate(hold_until=NOW) is None
