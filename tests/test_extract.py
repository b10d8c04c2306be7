"""Command extraction: fenced blocks found the moment they close, whatever the
split of the stream; looser fallbacks at the end of the reply; None when the
reply holds no command."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thunderdome.race.extract import CommandExtractor, extract_command, looks_like_command

FENCE = "```"

REPLIES = {
    "plain bash block": (f"{FENCE}bash\nkill -9 4 5\n{FENCE}", "kill -9 4 5"),
    "prose and block": (f"Sure! Here you go:\n\n{FENCE}sh\necho 'hi' > a.txt\n{FENCE}\n\nThis writes a.txt.", "echo 'hi' > a.txt"),
    "shebang dropped": (f"{FENCE}bash\n#!/bin/bash\nset -e\nmkdir -p out\n{FENCE}\n", "set -e\nmkdir -p out"),
    "shebang after blank line": (f"{FENCE}\n\n#!/usr/bin/env bash\nls\n{FENCE}", "ls"),
    "indented fence": (f"1. Run this:\n   {FENCE}bash\n   cd docs\n     ls -l\n   {FENCE}\n", "cd docs\n  ls -l"),
    "unlabelled block": (f"{FENCE}\nsort -rn sizes.txt | head -n 3\n{FENCE}", "sort -rn sizes.txt | head -n 3"),
    "shell label": (f"{FENCE}shell\nwc -l < f\n{FENCE}", "wc -l < f"),
    "tilde fence": ("~~~bash\necho tilde\n~~~", "echo tilde"),
    "console with prompts": (f"{FENCE}console\n$ ls\na.txt\n$ cat a.txt\nhello\n{FENCE}", "ls\ncat a.txt"),
    "prompt lines only": (f"{FENCE}bash\n$ echo one\n$ echo two\n{FENCE}", "echo one\necho two"),
    "python block skipped": (f"{FENCE}python\nprint('x')\n{FENCE}\nthen\n{FENCE}bash\necho real\n{FENCE}", "echo real"),
    "crlf line ends": (f"{FENCE}bash\r\necho crlf\r\n{FENCE}\r\n", "echo crlf"),
    "long fence holds short one": ("````bash\necho a\n```\necho b\n````", "echo a\n```\necho b"),
    "block inside think skipped": (f"<think>\nMaybe:\n{FENCE}bash\nrm -rf ~\n{FENCE}\nNo.\n</think>\n{FENCE}bash\necho ok\n{FENCE}", "echo ok"),
    "think mid-line": (f"Plan: <think>{FENCE}sh\nkill -9 1\n{FENCE}</think>\n{FENCE}sh\nls\n{FENCE}", "ls"),
    "tag-like text kept": (f"{FENCE}bash\necho '<thin' '</think' > f\n{FENCE}", "echo '<thin' '</think' > f"),
}


@pytest.mark.parametrize("name", list(REPLIES))
def test_whole_reply(name: str) -> None:
    text, expected = REPLIES[name]
    assert extract_command(text) == expected


@pytest.mark.parametrize("name", list(REPLIES))
def test_every_two_way_split_gives_the_same_command(name: str) -> None:
    text, expected = REPLIES[name]
    for cut in range(len(text) + 1):
        ex = CommandExtractor()
        got = ex.feed(text[:cut]) or ex.feed(text[cut:]) or ex.finish()
        assert got == expected, f"split at {cut}: {text[:cut]!r} | {text[cut:]!r}"


@pytest.mark.parametrize("name", list(REPLIES))
def test_char_by_char(name: str) -> None:
    text, expected = REPLIES[name]
    ex = CommandExtractor()
    got = None
    for ch in text:
        got = got or ex.feed(ch)
    assert (got or ex.finish()) == expected


def test_command_comes_out_the_moment_the_block_closes() -> None:
    """The closing fence's last backtick releases the command, before any
    newline and before the rest of the reply."""
    ex = CommandExtractor()
    for piece in ["```", "bash", "\n", "kill", " -9", " 4", " 5", "\n", "`", "`"]:
        assert ex.feed(piece) is None, piece
    assert ex.feed("`") == "kill -9 4 5"
    assert ex.source == "block"
    assert ex.feed("\n\nThat kills them.\n```bash\nrm -rf /\n```") is None  # returned once, later text ignored
    assert ex.finish() is None
    assert ex.command == "kill -9 4 5"


def test_block_not_released_before_it_closes() -> None:
    ex = CommandExtractor()
    assert ex.feed("```bash\necho a\necho b\n") is None
    assert ex.command is None
    assert ex.feed("``") is None and ex.command is None
    assert ex.feed("` trailing words") == "echo a\necho b"  # a fence line closes, whatever follows


def test_two_shell_blocks_first_wins() -> None:
    text = f"{FENCE}bash\necho first\n{FENCE}\nor\n{FENCE}bash\necho second\n{FENCE}"
    assert extract_command(text) == "echo first"


def test_non_shell_block_closing_early_does_not_open_a_new_block() -> None:
    """A python block's closing fence arriving in pieces must not be mistaken
    for an opener; the later bash block is still found."""
    ex = CommandExtractor()
    pieces = ["```python\nx = 1\n", "``", "`", "\n", "now:\n```bash\n", "echo ok\n", "```"]
    results = [ex.feed(p) for p in pieces]
    assert results[-1] == "echo ok"
    assert results[:-1] == [None] * (len(pieces) - 1)


def test_empty_block_is_not_a_command() -> None:
    assert extract_command(f"{FENCE}bash\n\n{FENCE}\nno command here.") is None
    assert extract_command(f"{FENCE}bash\n#!/bin/bash\n{FENCE}\n{FENCE}bash\necho later\n{FENCE}") == "echo later"


def test_unclosed_block_at_end_is_used() -> None:
    ex = CommandExtractor()
    assert ex.feed("```bash\ngrep -c x f.txt\n") is None
    assert ex.finish() == "grep -c x f.txt"
    assert ex.source == "open_block"


def test_think_still_open_at_the_end_hides_the_rest() -> None:
    assert extract_command("<think>\nI will run\n```bash\nkill -9 1\n```\nkill -9 2\n") is None
    assert extract_command("kill -9 4\n<think>kill -9 5") == "kill -9 4"


def test_bare_command_inside_think_is_not_the_answer() -> None:
    assert extract_command("<think>\nkill -9 4 5\n</think>\nI would rather not.") is None


MB = 1_000_000


@pytest.mark.parametrize("prefix", ["", "```bash\n", "```bash\n  ", "<think>"],
                         ids=["prose", "open shell block", "indented in a block", "think"])
def test_a_one_megabyte_line_in_small_deltas_is_linear_work(prefix: str) -> None:
    """A 1 MB reply without a newline, fed 4 characters at a time: the work
    (characters handled) stays a small multiple of the text, not its square."""
    line = ("flood " * (MB // 6 + 1))[:MB]
    ex = CommandExtractor()
    assert ex.feed(prefix) is None
    for i in range(0, MB, 4):
        assert ex.feed(line[i:i + 4]) is None
    ex.finish()
    assert ex.scanned <= 3 * (MB + len(prefix)), ex.scanned


def test_unclosed_non_shell_block_is_not_run() -> None:
    assert extract_command("```python\nimport os\nos.system('ls')\n") is None


def test_lone_bare_command() -> None:
    assert extract_command("kill -9 4 5") == "kill -9 4 5"
    assert extract_command("kill -9 4 5\n") == "kill -9 4 5"


def test_dollar_prompt_line() -> None:
    assert extract_command("Run:\n$ mkdir out\nand you are done.") == "mkdir out"


def test_several_bare_commands_joined() -> None:
    text = "mkdir -p backup\ncp docs/*.txt backup/\nls backup | wc -l > backup/COUNT"
    assert extract_command(text) == text


def test_bare_command_among_prose() -> None:
    text = "Here is the command:\nkill -9 4 5\nIt sends SIGKILL to both."
    assert extract_command(text) == "kill -9 4 5"


def test_inline_code_whole_line() -> None:
    assert extract_command("`kill -9 4 5`") == "kill -9 4 5"


def test_inline_code_in_prose() -> None:
    assert extract_command("You can run `sort -rn sizes.txt` to sort them.") == "sort -rn sizes.txt"


def test_inline_code_that_is_not_a_command_is_ignored() -> None:
    assert extract_command("The file `sizes.txt` has `9` lines.") is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I cannot help with that.",
        "Sort the numbers first, then find the largest.",
        "Kill them all.",
        "kill them all.",
        "make sure the file exists first\ntime to run it",
        "```text\nkill -9 4 5\n```",
    ],
)
def test_no_command(text: str) -> None:
    assert extract_command(text) is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("kill -9 4 5", True),
        ("./run.sh --fast", True),
        ("X=1 make", True),
        ("for f in *.txt; do echo $f; done", True),
        ("find . -name '*.ini'", True),
        ("echo", True),
        ("Find the file.", False),
        ("find the file that sets the port.", False),
        ("killing is bad", False),
        ("# a comment", False),
        ("", False),
    ],
)
def test_looks_like_command(line: str, expected: bool) -> None:
    assert looks_like_command(line) is expected


_reply_parts = st.sampled_from(
    [
        "Sure.\n", "```bash\n", "```\n", "```python\n", "echo hi\n", "kill -9 4 5\n", "#!/bin/bash\n",
        "  ```sh\n", "  ls\n", "$ pwd\n", "`ls -l`\n", "text with `code`\n", "\n", "~~~\n", "``", "`", "````x\n", "```bash\n", "~~~~\n",
        "<think>", "</think>", "<thi", "nk>", "</", "think>\n",
    ]
)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(_reply_parts, max_size=12), cuts=st.lists(st.integers(0, 400), max_size=6))
def test_any_split_matches_the_whole(parts: list[str], cuts: list[int]) -> None:
    """Property: the command does not depend on how the stream was chunked."""
    text = "".join(parts)
    whole = extract_command(text)
    points = sorted({c % (len(text) + 1) for c in cuts})
    ex = CommandExtractor()
    got, prev = None, 0
    for point in points + [len(text)]:
        got = got or ex.feed(text[prev:point])
        prev = point
    assert (got or ex.finish()) == whole
