"""Secrets of a race, and the one function that takes them out of text.

Invariant: ``redact(text)`` returns ``text`` with every known secret value
replaced by ``[redacted]`` — the values of the backends' key variables (and of
any ``*_API_KEY`` / ``*_TOKEN`` / ``*_SECRET`` variable of 8+ characters), the
credentials of a URL (userinfo, key-like query parameters) — as well as a
6+ character beginning of a secret left at the end of a text or before an
ellipsis (a key cut short elsewhere). ``HeldText`` does the same for one text
streamed in pieces (tokens of a lane, across channels): a piece whose end
may begin a secret is held back until the next piece shows whether it
completes, so a key split anyhow never leaves whole. Text is redacted
*before* it is cut; cutting afterwards can only shorten ``[redacted]``.
Nothing here imports a UI or opens a socket.
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable, Generic, Iterable, Mapping, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

REDACTED = "[redacted]"
SECRET_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET")
MIN_SUFFIX_SECRET = 8
"""Variables found by suffix are secrets only from this length on."""
MIN_NAMED_SECRET = 4
"""A backend's own key variable (or a URL password) is scrubbed from this
length on (shorter values cannot be real keys and would shred ordinary text)."""
MIN_FRAGMENT = 6
"""A secret's beginning this long, at the end of a text or before ``…``, is
taken for a cut key and redacted."""
KEY_PARAMS = ("key", "api_key", "apikey", "api-key", "access_token", "token", "auth", "password", "secret", "sig",
              "signature", "code")
"""Query parameters whose values are credentials."""

_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@?#]+@")
_URL_KEY_PARAM = re.compile(r"(?i)([?&](?:" + "|".join(map(re.escape, KEY_PARAMS)) + r")=)[^&#\s'\"]+")


def env_secrets(names: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> set[str]:
    """Values to scrub: those of the named variables, and of every variable
    whose name ends in _API_KEY/_TOKEN/_SECRET with a value of 8+ chars."""
    env = os.environ if environ is None else environ
    found: set[str] = set()
    for name in names:
        value = env.get(name) or ""
        for v in (value, value.strip()):
            if len(v) >= MIN_NAMED_SECRET:
                found.add(v)
    for name, value in env.items():
        if name.upper().endswith(SECRET_SUFFIXES):
            for v in (value, value.strip()):
                if len(v) >= MIN_SUFFIX_SECRET:
                    found.add(v)
    return found


def url_secrets(url: str) -> set[str]:
    """The credentials inside a URL: a password of 4+ characters, a user name
    of 8+ (a token used as the user), values of key-like query parameters."""
    found: set[str] = set()
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return found
    if password and len(unquote(password)) >= MIN_NAMED_SECRET:
        found |= {password, unquote(password)}
    if user and len(unquote(user)) >= (MIN_SUFFIX_SECRET if password else MIN_NAMED_SECRET):
        found |= {user, unquote(user)}
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if name.lower() in KEY_PARAMS and len(value) >= MIN_NAMED_SECRET:
            found.add(value)
    return found


def scrub_urls(text: str) -> str:
    """``https://user:pass@host/?key=v`` -> ``https://[redacted]@host/?key=[redacted]``."""
    if "://" in text:
        text = _URL_USERINFO.sub(r"\1" + REDACTED + "@", text)
    if "=" in text:
        text = _URL_KEY_PARAM.sub(r"\1" + REDACTED, text)
    return text


class Secrets:
    """An immutable set of secret values, compiled for fast matching."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self.values: tuple[str, ...] = tuple(sorted({v for v in values if v}, key=len, reverse=True))
        self.pattern = re.compile("|".join(map(re.escape, self.values))) if self.values else None
        self.longest = max((len(v) for v in self.values), default=0)
        self.firsts = frozenset(v[0] for v in self.values)

    def __bool__(self) -> bool:
        return self.pattern is not None

    def __or__(self, other: Iterable[str]) -> "Secrets":
        return Secrets((*self.values, *other))

    def redact(self, text: str) -> str:
        """``text`` without any secret, URL credential or cut-off key beginning."""
        if not text:
            return text
        text = scrub_urls(text)
        if self.pattern is None:
            return text
        text = self.pattern.sub(REDACTED, text)
        if "…" in text:
            text = "…".join(self._cut_tail(part) for part in text.split("…"))
        return self._cut_tail(text)

    def _cut_tail(self, text: str) -> str:
        start = self.prefix_start(text, 0)
        if len(text) - start >= MIN_FRAGMENT:
            return text[:start] + REDACTED
        return text

    def prefix_start(self, whole: str, tail_from: int) -> int:
        """Start of the longest suffix of ``whole`` (after ``tail_from``) that
        begins some secret without completing it; ``len(whole)`` if none."""
        firsts = self.firsts
        for i in range(max(tail_from, len(whole) - self.longest + 1), len(whole)):
            if whole[i] in firsts:
                rest = whole[i:]
                if any(len(s) > len(rest) and s.startswith(rest) for s in self.values):
                    return i
        return len(whole)

    def split(self, texts: list[str], *, final: bool) -> tuple[list[str], int, int]:
        """Redact ``texts`` as one text cut into pieces: each match becomes
        ``[redacted]`` in the piece where it starts and vanishes from the
        others. Returns the new pieces, how many of them are safe to release
        now (all when ``final``; else those before a trailing beginning of a
        secret), and how many characters at the end of the first piece not
        released are that beginning (the rest of that piece is safe)."""
        assert self.pattern is not None
        whole = "".join(texts)
        matches = [(m.start(), m.end()) for m in self.pattern.finditer(whole)]
        tail_from = matches[-1][1] if matches else 0
        hold_from = len(whole) if final else self.prefix_start(whole, tail_from)
        out: list[str] = []
        pos = mi = 0
        releasable = tail = 0
        for text in texts:
            end = pos + len(text)
            parts: list[str] = []
            i = pos
            while i < end:
                while mi < len(matches) and matches[mi][1] <= i:
                    mi += 1
                if mi < len(matches) and matches[mi][0] <= i < matches[mi][1]:
                    if i == matches[mi][0]:
                        parts.append(REDACTED)
                    i = min(end, matches[mi][1])
                    continue
                nxt = matches[mi][0] if mi < len(matches) else end
                nxt = min(max(nxt, i + 1), end)
                parts.append(whole[i:nxt])
                i = nxt
            out.append("".join(parts))
            if end <= hold_from and releasable == len(out) - 1:
                releasable += 1
            elif releasable == len(out) - 1:
                tail = end - hold_from  # no match lies after hold_from: these characters are unchanged
            pos = end
        return out, releasable, tail


T = TypeVar("T")


class HeldText(Generic[T]):
    """One text arriving in pieces, each with an item it belongs to (an event
    dict, a channel): ``push`` returns the ``(item, text)`` pairs now safe,
    redacted, in order; a piece that might begin a secret waits for the next.
    ``divisible``: a waiting piece may be cut, so only its possible secret
    beginning waits (for display; an event's text stays whole)."""

    def __init__(self, secrets: Secrets, *, divisible: bool = False) -> None:
        self.secrets = secrets
        self.divisible = divisible
        self._held: list[tuple[T, str]] = []

    def __bool__(self) -> bool:
        return bool(self._held)

    def push(self, item: T, text: str) -> list[tuple[T, str]]:
        secrets = self.secrets
        if secrets.pattern is None:
            return [(item, text)]
        if not self._held and secrets.pattern.search(text) is None and secrets.prefix_start(text, 0) == len(text):
            return [(item, text)]  # nothing held, nothing secret, no secret starting at its end
        self._held.append((item, text))
        return self._release(final=False)

    def release(self) -> list[tuple[T, str]]:
        """Everything held, redacted (the text has ended)."""
        return self._release(final=True) if self._held else []

    def release_cut(self) -> list[tuple[T, str]]:
        """Everything held, the text having ended there: what waits is a
        secret's beginning, so from ``MIN_FRAGMENT`` characters on it is a
        key cut short and leaves as ``[redacted]`` (``redact``'s rule)."""
        pairs = self.release()
        if sum(len(text) for _, text in pairs) >= MIN_FRAGMENT:
            return [(pairs[0][0], REDACTED)]
        return pairs

    def _release(self, *, final: bool) -> list[tuple[T, str]]:
        texts, count, tail = self.secrets.split([text for _, text in self._held], final=final)
        pairs = [(item, text) for (item, _), text in zip(self._held, texts)]
        out, self._held = pairs[:count], pairs[count:]
        if self.divisible and self._held and len(self._held[0][1]) > tail:
            item, text = self._held[0]
            out.append((item, text[: len(text) - tail]))
            self._held[0] = (item, text[len(text) - tail :])
        return out


# --- the secrets this process knows ------------------------------------------------------

_names: set[str] = set()
_values: set[str] = set()
_cache: tuple[dict[Any, Any], frozenset[str], frozenset[str], Secrets] | None = None
"""(environment copy, names, values, compiled): reading ~40 variables costs
~150 µs, comparing the environment with its copy ~3 µs."""


def remember_backend(backend: Any) -> None:
    """Learn a backend's secrets: its key variable's name (the value is read
    from the environment whenever ``known()`` is asked) and its URL's
    credentials. ``backend``: a ``BackendSpec`` or its ``public_dict()``."""
    get = backend.get if isinstance(backend, Mapping) else lambda name: getattr(backend, name, None)
    name = get("api_key_env")
    if isinstance(name, str) and name:
        _names.add(name)
    url = get("url")
    if isinstance(url, str) and url:
        _values.update(url_secrets(url))


def known() -> Secrets:
    """Every secret this process knows of now (env keys, remembered backends)."""
    global _cache
    env = getattr(os.environ, "_data", None)  # CPython's raw mapping: cheap to compare
    cache = _cache
    if cache is not None and env is not None and cache[0] == env and cache[1] == _names and cache[2] == _values:
        return cache[3]
    secrets = Secrets(env_secrets(_names) | _values)
    _cache = (dict(env) if env is not None else {}, frozenset(_names), frozenset(_values), secrets)
    return secrets


def redact(text: str) -> str:
    """``known().redact(text)``."""
    return known().redact(text)


def map_strings(obj: Any, fn: Callable[[str], str]) -> Any:
    """A copy of ``obj`` (JSON-like) with ``fn`` applied to every string, keys included."""
    if isinstance(obj, str):
        return fn(obj)
    if isinstance(obj, dict):
        return {fn(k) if isinstance(k, str) else k: map_strings(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [map_strings(v, fn) for v in obj]
    return obj


def redact_obj(obj: Any, secrets: Secrets | None = None) -> Any:
    """A copy of ``obj`` (JSON-like) with every string redacted."""
    return map_strings(obj, (known() if secrets is None else secrets).redact)


_KEYLIKE = re.compile(r"(?<![\w./-])(?=[\w-]*\d)(?=[\w-]*[a-z])[A-Za-z0-9][\w-]{15,}(?![\w./-])")


def mask_keylike(text: str) -> str:
    """Mask words that look like a pasted key (16+ characters of letters,
    digits, ``-``/``_`` with lower case and digits, not part of a path): for
    messages that echo what a person typed where a variable *name* belongs."""
    return _KEYLIKE.sub(REDACTED, redact(text))


__all__ = [
    "KEY_PARAMS",
    "MIN_FRAGMENT",
    "REDACTED",
    "SECRET_SUFFIXES",
    "HeldText",
    "Secrets",
    "env_secrets",
    "known",
    "map_strings",
    "mask_keylike",
    "redact",
    "redact_obj",
    "remember_backend",
    "scrub_urls",
    "url_secrets",
]
