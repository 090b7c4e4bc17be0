import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiercel.core.problems import Problem
from tiercel.core.ranges import IndexRanges, RangeQueue, parse_ranges


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        ("7", ((7, 8),)),
        ("0-99", ((0, 100),)),
        ("0-99,200-299", ((0, 100), (200, 300))),
        ("200-299, 0-99", ((0, 100), (200, 300))),
        ("0-9,5-14", ((0, 15),)),
        ("0-9,10-19", ((0, 20),)),
        ("0-8:4", ((0, 1), (4, 5), (8, 9))),
    ],
)
def test_parse_valid(text: str, spans: tuple[tuple[int, int], ...]) -> None:
    assert parse_ranges(text, max_size=1000, max_index=10**6) == IndexRanges(spans)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "at least one index"),
        ("5-1", "ends before it starts"),
        ("a-b", "not an index"),
        ("-5", "not an index"),
        ("1-", "not an index"),
        ("0-9:0", "step must be a positive"),
        ("0-2000", "at most 1000"),
        ("0-5,7-2000000", "must not exceed"),
    ],
)
def test_parse_invalid_names_field_and_value(text: str, needle: str) -> None:
    problem = parse_ranges(text, max_size=1000, max_index=10**6)
    assert isinstance(problem, Problem)
    assert problem.field == "array"
    assert needle in problem.message()


def test_million_task_array_is_one_span() -> None:
    r = parse_ranges("0-999999", max_size=10**8, max_index=2**31)
    assert isinstance(r, IndexRanges)
    assert len(r) == 1_000_000 and len(r.spans) == 1
    assert 999_999 in r and 1_000_000 not in r


def test_queue_takes_in_order_and_discards_from_middle() -> None:
    q = RangeQueue([(0, 10), (20, 25)])
    assert q.take(3) == [0, 1, 2]
    assert q.discard(5) and not q.discard(5)
    assert 5 not in q and 6 in q
    assert q.take(100) == [3, 4, 6, 7, 8, 9, 20, 21, 22, 23, 24]
    assert len(q) == 0 and not q


@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 30)), max_size=8),
       st.lists(st.integers(0, 240), max_size=20), st.integers(1, 50))
def test_queue_matches_a_set(raw: list[tuple[int, int]], removals: list[int], chunk: int) -> None:
    spans = [(a, a + n) for a, n in raw]
    q = RangeQueue(spans)
    model = sorted({i for a, b in spans for i in range(a, b)})
    for r in removals:
        assert q.discard(r) == (r in model)
        if r in model:
            model.remove(r)
    assert len(q) == len(model)
    taken: list[int] = []
    while q:
        taken += q.take(chunk)
    assert taken == model
