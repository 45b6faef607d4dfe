"""The ledger's text of a pending batch's keys (``purge.keys.keys_text``): the fast path
(orjson, for one-column integer keys) writes exactly what the plain path
(``json.dumps`` of ``enc_keys``) writes, and the keys come back from it unchanged."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from learnexit.purge.keys import enc_keys, key_from_json, keys_text


def plain(keys: list[tuple[Any, ...]]) -> str:
    return json.dumps(enc_keys(keys), separators=(",", ":"))


def back(text: str) -> list[tuple[Any, ...]]:
    return [key_from_json(json.dumps(k)) for k in json.loads(text)]


integers = st.integers(min_value=-(2**70), max_value=2**70)  # beyond orjson's 64 bits too


@given(st.lists(integers, max_size=300))
def test_integer_keys_as_the_plain_path_writes_them(values: list[int]) -> None:
    keys = [(v,) for v in values]
    assert keys_text(keys) == plain(keys)
    assert back(keys_text(keys)) == keys


@given(
    st.lists(
        st.one_of(
            st.tuples(st.text(max_size=12)),
            st.tuples(integers, st.text(max_size=6)),
            st.tuples(st.booleans()),
            st.tuples(st.dates()),
            st.tuples(st.decimals(allow_nan=False, allow_infinity=False, places=2)),
        ),
        max_size=50,
    )
)
def test_other_keys_as_the_plain_path_writes_them(keys: list[tuple[Any, ...]]) -> None:
    keys = [k for k in keys if len(k) == len(keys[0])]  # (one table's keys: one shape)
    assert keys_text(keys) == plain(keys)
    assert back(keys_text(keys)) == keys


def test_a_batch_of_integer_keys_is_the_compact_array_of_arrays() -> None:
    assert keys_text([(1,), (20,), (-3,)]) == "[[1],[20],[-3]]"
    assert keys_text([]) == "[]"
    assert keys_text([(2**64,)]) == "[[18446744073709551616]]"
    assert keys_text([("Åsa",), ("b",)]) == '[["\\u00c5sa"],["b"]]'
    assert back(keys_text([(date(2026, 1, 2), Decimal("1.50"))])) == [(date(2026, 1, 2), Decimal("1.50"))]
