"""A bash call's command, decoded from its JSON arguments as they stream:
whatever the fragments, the pieces join into the command ``json.loads`` reads."""

from __future__ import annotations

import json
import random

import pytest

from thunderdome.core.command_text import SEEK_LIMIT, CommandText
from thunderdome.core.visible import visible

COMMANDS = [
    "kill -9 4242",
    'printf "a\\tb\\n" > out.txt && echo \'done\'',
    "echo \x1b[31mred\x1b[0m \x07",
    "echo 🦀 café \u2028 \\\\ / end",
    "",
]


def feed_all(pieces: list[str]) -> tuple[str, CommandText]:
    decoder = CommandText()
    return "".join(decoder.feed(p) for p in pieces), decoder


@pytest.mark.parametrize("ascii_only", [True, False])
@pytest.mark.parametrize("command", COMMANDS)
def test_every_split_joins_into_the_command(command: str, ascii_only: bool) -> None:
    arguments = json.dumps({"description": 'not the "command": "x"', "command": command, "z": 1}, ensure_ascii=ascii_only)
    for cut in range(len(arguments) + 1):
        assert feed_all([arguments[:cut], arguments[cut:]])[0] == command
    rng = random.Random(len(arguments))
    for _ in range(50):
        pieces, at = [], 0
        while at < len(arguments):
            step = rng.randint(1, 7)
            pieces.append(arguments[at: at + step])
            at += step
        assert feed_all(pieces)[0] == command


def test_pieces_come_as_they_form_and_stop_at_the_strings_end() -> None:
    decoder = CommandText()
    assert decoder.feed('{"comm') == "" and not decoder.shown
    assert decoder.feed('and": "ls -') == "ls -"
    assert decoder.shown
    assert decoder.feed('la\\') == "la"  # the escape waits for its second half
    assert decoder.feed('n", "command": "again"}') == "\n"


def test_a_decoded_escape_is_a_real_control_character_until_made_visible() -> None:
    text, _ = feed_all(['{"command": "echo \\u001b]52;c;aGk=\\u0007"}'])
    assert "\x1b" in text
    assert visible(text) == "echo ␛]52;c;aGk=␇"


@pytest.mark.parametrize(
    "arguments",
    ['{"command": ["bash", "-c", "ls"]}', '{"cmd": "ls"}', "not json at all", '{"x": "' + "y" * SEEK_LIMIT + '", "command": "ls"}'],
)
def test_no_command_string_gives_nothing(arguments: str) -> None:
    text, decoder = feed_all([arguments[i: i + 100] for i in range(0, len(arguments), 100)])
    assert text == "" and not decoder.shown


def test_lone_and_broken_escapes_become_replacement_characters() -> None:
    assert feed_all(['{"command": "a\\ud800b\\udc00c\\uzzzz"}'])[0] == "a\ufffdb\ufffdc\ufffdzzzz"
