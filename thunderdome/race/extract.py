"""Find the shell command in a model's reply, incrementally, as it streams.

Invariant: extraction is a pure function of the text fed so far: no I/O, no
clock. ``CommandExtractor.feed(delta)`` returns the command *the moment* the
first shell code block closes (so a fast lane acts before its reply ends) and
returns it at most once; ``finish()`` is called at the end of a reply that
ended naturally and falls back to looser rules (the agent loop never calls it
on a reply cut short: what the model did not finish never runs). Feeding a
reply in any split gives the same result as feeding it whole, and the work
is linear in the text fed, whatever the split (no line is ever copied again
per delta; ``scanned`` counts the characters handled, and tests hold it to
that).

Text inside ``<think>…</think>`` (models that inline their reasoning in the
answer) is reasoning, not the answer: it is dropped before the rules below
see the text; a span still open when the reply ends hides the rest.

Rules, in order of precedence:

1. **Fenced block.** The first fenced block (``` or ~~~, any indentation)
   whose info string is empty or a shell (``bash``, ``sh``, ``shell``,
   ``zsh``, ``console``, ``shell-session``, ``terminal``) is the command.
   Blocks in other languages (``python``, ``text``, ...) are skipped. Its
   indentation is removed, a leading shebang line (``#!/bin/bash``) is
   dropped, blank lines at either end are dropped, and the remaining lines are
   kept as one script (joined with newlines). When every non-empty line starts
   with ``$ `` (a pasted terminal session) only those lines are kept, without
   the prompt. The *first* shell block wins; later blocks are never run. A
   closing fence counts as soon as its backticks arrive, before its newline
   (so a line inside a block that starts with the fence closes it).
   A block still open when a (naturally ended) reply ends is used as is.
2. **``$ cmd`` lines** outside blocks: joined with newlines.
3. **Bare command lines**: lines that look like a shell command (they start
   with a well-known command name, ``./``, ``/``, ``VAR=``, ``sudo``, ...)
   joined with newlines; prose lines around them are ignored.
4. **Inline code**: backticked spans that look like a command; spans that
   fill a whole line are joined, else the first span in prose is used.

No match: ``finish()`` returns None (the agent loop turns that into the
verdict "no command found").
"""

from __future__ import annotations

import re

SHELL_INFO = frozenset(
    {"", "bash", "sh", "shell", "zsh", "console", "shell-session", "shellsession", "sh-session", "terminal",
     "ksh", "dash", "posix"}
)
"""Info strings (first word, lower case) of fenced blocks taken as shell."""

KNOWN_COMMANDS = frozenset(
    """
    kill pkill killall echo printf cat ls cd mkdir rmdir rm cp mv touch ln chmod chown grep egrep fgrep rg
    awk gawk mawk sed sort uniq wc head tail cut tr find xargs tee diff cmp comm paste column nl rev
    fold fmt seq expr test true false exit export unset for while if bash sh zsh dash python python3
    perl ruby node php jq yq date sleep basename dirname readlink realpath stat du df ps pgrep pidof tar
    gzip gunzip zcat bzip2 xz unzip zip base64 md5sum sha1sum sha256sum od xxd hexdump which env timeout
    nohup gcc cargo git curl wget truncate csplit shuf tac dd mktemp iconv bc printenv trap sudo
    """.split()
)
"""First words that make a bare line look like a shell command. Common English
words that are also commands (make, file, type, time, source, ...) are left
out: a prose line starting with one must not be run."""

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
_FIRST_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.+-]*")


def _is_closing(line: str, fence: str) -> bool:
    """Inside a block, a line that starts with the fence (same character, at
    least as long) closes it, whatever follows. Looser than CommonMark (which
    wants nothing after it), so that a closing fence can count the moment its
    backticks arrive and a split stream agrees with the whole reply."""
    return line.lstrip().startswith(fence[0] * len(fence))


def looks_like_command(line: str) -> bool:
    """Heuristic: does this (stripped) line read as a shell command, not prose?"""
    line = line.strip()
    if not line or line.startswith("#"):
        return False
    if line.startswith(("./", "/", "~/", "$(", "[ ", "[[ ", "{ ", "( ")):
        return True
    if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=\S", line):  # VAR=value cmd
        return True
    word = _FIRST_WORD.match(line)
    if word is None:
        return False
    name = word.group(0)
    rest = line[len(name):]
    if name not in KNOWN_COMMANDS:
        return False
    # "kill them all." is prose; a command is the word alone or followed by
    # something shell-like (space, ;, |, &, >, <).
    if rest and rest[0] not in " \t;|&<>":
        return False
    return not (rest.endswith((".", ":")) and " " in rest.strip() and not re.search(r"[-/$|>'\"=]", rest))


def _clean_block(lines: list[str], indent: str) -> str | None:
    """The script inside a fenced block, or None if there is none."""
    out = []
    for line in lines:
        if indent and line.startswith(indent):
            line = line[len(indent):]
        out.append(line.rstrip())
    while out and not out[0].strip():
        out.pop(0)
    if out and out[0].lstrip().startswith("#!"):
        out.pop(0)
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    if not out:
        return None
    nonblank = [line for line in out if line.strip()]
    prompted = [line for line in nonblank if line.lstrip().startswith("$ ")]
    if prompted and (len(prompted) == len(nonblank) or _session_like(out)):
        out = [line.lstrip()[2:] for line in prompted]
    script = "\n".join(out)
    return script if script.strip() else None


def _tag_prefix_at_end(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that begins ``tag`` (a tag split
    across deltas), at most ``len(tag) - 1``."""
    for k in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:k]):
            return k
    return 0


def _session_like(lines: list[str]) -> bool:
    """A console block: prompts followed by output lines."""
    first = next((line for line in lines if line.strip()), "")
    return first.lstrip().startswith("$ ")


class CommandExtractor:
    """Feed answer deltas; get the command as soon as a shell block closes.

    ``command`` holds the command once found (by ``feed`` or ``finish``);
    ``source`` says which rule found it (``block``, ``open_block``,
    ``prompt``, ``lines``, ``inline``)."""

    def __init__(self) -> None:
        self._pieces: list[str] = []
        """The current (incomplete) line, in the pieces it came in; joined once, at its newline."""
        self._head: str | None = ""
        """The current line's start, left-stripped, while it may still be a
        closing fence; None once that is decided."""
        self._held = ""
        """The end of the last delta that may begin a think tag (under 8 characters)."""
        self._thinking = False
        self._lines: list[str] = []
        """Complete lines seen outside any shell block."""
        self._fence: str | None = None
        self._indent = ""
        self._shell = False
        self._block: list[str] = []
        self.command: str | None = None
        self.source: str | None = None
        self.scanned = 0
        """Characters handled so far (each delta, each line joined, each fence
        check): the extractor's work, linear in the text fed."""

    @property
    def done(self) -> bool:
        return self.command is not None

    def feed(self, text: str) -> str | None:
        """Take the next delta; return the command if a shell block just closed."""
        if not text or self.command is not None:
            return None
        text = self._answer_part(text)
        start = 0
        while (end := text.find("\n", start)) >= 0:
            self._pieces.append(text[start:end])
            start = end + 1
            found = self._line(self._take_line().rstrip("\r"))
            if found is not None:
                return self._found(found, "block")
        if start == len(text):
            return None
        rest = text[start:] if start else text
        self._pieces.append(rest)
        if self._fence is not None and self._shell and self._closes_now(rest):
            # act before the closing fence's newline arrives; only for a shell
            # block that holds a command, since then nothing after it matters
            found = _clean_block(self._block, self._indent)
            if found is not None:
                return self._found(found, "block")
        return None

    def finish(self) -> str | None:
        """End of reply: the command if ``feed`` has not returned one yet."""
        if self.command is not None:
            return None
        if self._held and not self._thinking:
            self._pieces.append(self._held)  # it never became a tag
        self._held = ""
        if self._pieces:
            found = self._line(self._take_line().rstrip("\r"))
            if found is not None:
                return self._found(found, "block")
        if self._fence is not None and self._shell:
            found = _clean_block(self._block, self._indent)
            if found is not None:
                return self._found(found, "open_block")
        return self._fallback()

    # -- internals ---------------------------------------------------------------

    def _answer_part(self, text: str) -> str:
        """``text`` without what lies inside ``<think>…</think>``; a tag split
        across deltas is held back until the next one says what it is."""
        data = self._held + text if self._held else text
        self.scanned += len(data)
        self._held = ""
        if "<" not in data:  # the common case: no tag, nor the start of one
            return "" if self._thinking else data
        kept: list[str] = []
        pos = 0
        while True:
            tag = THINK_CLOSE if self._thinking else THINK_OPEN
            at = data.find(tag, pos)
            if at < 0:
                hold = min(_tag_prefix_at_end(data, tag), len(data) - pos)
                if hold:
                    self._held = data[len(data) - hold:]
                if not self._thinking:
                    kept.append(data[pos:len(data) - hold] if pos or hold else data)
                return "".join(kept)
            if not self._thinking:
                kept.append(data[pos:at])
            self._thinking = not self._thinking
            pos = at + len(tag)

    def _take_line(self) -> str:
        """The current line, whole; the next one starts empty."""
        line = self._pieces[0] if len(self._pieces) == 1 else "".join(self._pieces)
        self.scanned += len(line)
        self._pieces = []
        self._head = ""
        return line

    def _closes_now(self, piece: str) -> bool:
        """True once per line: the moment the current line, grown by
        ``piece``, is seen to start with the open block's closing fence."""
        if self._head is None:
            return False
        assert self._fence is not None
        head = (self._head + piece).lstrip()
        self.scanned += len(piece)
        want = self._fence[0] * len(self._fence)
        if len(head) < len(want) and want.startswith(head):
            self._head = head  # shorter than the fence: undecided
            return False
        self._head = None
        return head.startswith(want)

    def _found(self, command: str, source: str) -> str:
        self.command, self.source = command, source
        return command

    def _line(self, line: str) -> str | None:
        """Process one complete line; return a command if a block closed."""
        if self._fence is None:
            match = _FENCE.match(line)
            if match:
                self._fence = match.group("fence")
                self._indent = match.group("indent")
                info = match.group("info").strip().split()
                self._shell = (info[0].lower().strip("{}.") if info else "") in SHELL_INFO
                self._block = []
            else:
                self._lines.append(line)
            return None
        if _is_closing(line, self._fence):
            return self._close_block()
        self._block.append(line)
        return None

    def _close_block(self) -> str | None:
        shell, block, indent = self._shell, self._block, self._indent
        self._fence, self._block, self._shell = None, [], False
        if shell:
            return _clean_block(block, indent)
        return None

    def _fallback(self) -> str | None:
        lines = [line.strip() for line in self._lines if line.strip()]
        prompted = [line[2:].strip() for line in lines if line.startswith("$ ") and line[2:].strip()]
        if prompted:
            return self._found("\n".join(prompted), "prompt")
        bare = [line for line in lines if looks_like_command(line)]
        if bare:
            return self._found("\n".join(bare), "lines")
        whole, inline = [], []
        for line in lines:
            spans = [s.strip() for s in _INLINE.findall(line) if looks_like_command(s)]
            if not spans:
                continue
            if len(spans) == 1 and line.strip("` ") == spans[0]:
                whole.append(spans[0])
            else:
                inline.extend(spans)
        if whole:
            return self._found("\n".join(whole), "inline")
        if inline:
            return self._found(inline[0], "inline")
        return None


def extract_command(text: str) -> str | None:
    """The command in a whole reply (same rules as streaming)."""
    extractor = CommandExtractor()
    found = extractor.feed(text)
    return found if found is not None else extractor.finish()


__all__ = ["CommandExtractor", "extract_command", "looks_like_command", "SHELL_INFO", "KNOWN_COMMANDS", "THINK_OPEN", "THINK_CLOSE"]
