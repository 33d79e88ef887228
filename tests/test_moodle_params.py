"""Moodle's PHP-style parameter encoding, and the simulator's decoding of it."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from connectors.moodle.params import decode, encode


def test_nested_lists_and_structs() -> None:
    fields = encode(
        {
            "users": [{"id": 5, "email": "a@b.c"}],
            "criteria": [{"key": "email", "value": "a%"}],
            "options": {"ids": [2, 7]},
        }
    )
    assert fields == [
        ("users[0][id]", "5"),
        ("users[0][email]", "a@b.c"),
        ("criteria[0][key]", "email"),
        ("criteria[0][value]", "a%"),
        ("options[ids][0]", "2"),
        ("options[ids][1]", "7"),
    ]


def test_booleans_are_one_and_zero_and_none_or_empty_lists_are_omitted() -> None:
    assert encode({"returnusercount": False, "onlyactive": True, "skip": None, "values": []}) == [
        ("returnusercount", "0"),
        ("onlyactive", "1"),
    ]


def test_decode_builds_php_arrays() -> None:
    assert decode("users%5B0%5D%5Bid%5D=5&users%5B1%5D%5Bid%5D=6&field=id") == {
        "users": {"0": {"id": "5"}, "1": {"id": "6"}},
        "field": "id",
    }


keys = st.text(alphabet="abcdefghij_", min_size=1, max_size=6)
scalars = st.one_of(st.integers(-(10**6), 10**6), st.text(max_size=12), st.booleans())
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=4), st.dictionaries(keys, inner, min_size=1, max_size=4)
    ),
    max_leaves=20,
)


def php_view(value: Any) -> Any:
    """What PHP sees: lists become int-keyed maps, scalars become strings, bools 1/0."""
    if isinstance(value, dict):
        return {str(k): php_view(v) for k, v in value.items()}
    if isinstance(value, list):
        return {str(i): php_view(v) for i, v in enumerate(value)}
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


@given(st.dictionaries(keys, values, min_size=1, max_size=5))
def test_encode_then_decode_round_trips(params: dict[str, Any]) -> None:
    assert decode(encode(params)) == php_view(params)
