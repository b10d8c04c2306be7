"""Agent lanes: real agent programs (Claude Code, Codex CLI, OpenCode, a command) as race lanes.

Invariant: importing this package loads nothing but itself; ``presets`` is
pure data (the config reads it), ``lane`` brings in the gateway and the
sandbox only when a race has agent lanes.
"""
