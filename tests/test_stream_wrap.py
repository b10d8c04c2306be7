"""The token widget's word wrap cuts rows exactly where rich's does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from rich._wrap import divide_line

from thunderdome.tui.widgets.stream_rows import _breaks

WORDS = st.lists(
    st.one_of(st.text(alphabet="abcdefghij.,-_!", min_size=1, max_size=70), st.sampled_from([" ", "  ", "   "])),
    max_size=40,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=WORDS, width=st.integers(min_value=1, max_value=60))
def test_ascii_rows_break_where_rich_breaks_them(text: str, width: int) -> None:
    assert _breaks(text, width) == divide_line(text, width, fold=True)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=200), width=st.integers(min_value=1, max_value=40))
def test_any_text_rows_break_where_rich_breaks_them(text: str, width: int) -> None:
    text = text.replace("\n", " ")
    assert _breaks(text, width) == divide_line(text, width, fold=True)


def test_a_word_wider_than_the_row_is_cut_every_width_characters() -> None:
    assert _breaks("ab " + "x" * 25 + " cd", 10) == divide_line("ab " + "x" * 25 + " cd", 10, fold=True) == [3, 13, 23]
