"""Hypothesis strategies for hostile input: any JSON value, and a document with parts of
it replaced, removed or added."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


@st.composite
def mutated(draw: st.DrawFn, document: dict[str, Any], keys: tuple[str, ...] = ()) -> Any:
    """``document`` with up to three of its keys (or ``keys``, or new ones) replaced by
    any JSON value or removed; sometimes a nested mapping mutated the same way."""
    result = dict(document)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        key = draw(st.sampled_from(sorted({*result, *keys}) or ["x"]) | st.text(max_size=8))
        action = draw(st.sampled_from(("replace", "remove", "nested")))
        if action == "remove":
            result.pop(key, None)
        elif action == "nested" and isinstance(result.get(key), dict):
            result[key] = draw(mutated(result[key]))
        else:
            result[key] = draw(JSON_VALUES)
    return result
