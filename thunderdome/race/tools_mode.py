"""The ``tools`` lane mode: the model acts through one native ``bash`` tool.

Invariant: a command runs only from the first tool call that completed in a
reply that ended naturally, when that call is ``bash`` with arguments
``{"command": <non-empty string>}``. A reply that did not end naturally, or
whose call was cut mid-arguments, runs nothing (its verdict says so);
malformed arguments run nothing and go back to the model as the tool's
error. A reply with no tool call means the model stopped: the lane ends
without a pass. The tool result tells the model the exit code, stdout and
stderr (tails, with a note when cut) and what was wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from thunderdome.backends.base import BackendError, ChatRequest, ToolSpec
from thunderdome.core.events import ToolCallDone
from thunderdome.race.engine import Lane, Race
from thunderdome.race.reply import cut_reason, read_reply
from thunderdome.race.text_mode import FEEDBACK_OUTPUT_LIMIT, TextMode, cut_detail, describe_exit
from thunderdome.race.turns import Attempt, Judgement, LaneMode, Messages, tail
from thunderdome.core.specs import BackendSpec, TaskSpec

BASH_TOOL = ToolSpec(
    name="bash",
    description="Run one shell command (bash -c) in your work dir; you get its exit code, stdout and stderr.",
    parameters={
        "type": "object",
        "properties": {"command": {"type": "string", "description": "The shell command to run."}},
        "required": ["command"],
    },
)
CUT_MID_ARGUMENTS = "reply cut mid-arguments"
STOPPED = "the model stopped: it answered without calling the bash tool"


@dataclass(frozen=True)
class ToolAttempt(Attempt):
    """An attempt with the tool call it came from (None: no complete call)."""

    call: ToolCallDone | None = None
    signed_reasoning: tuple[dict[str, Any], ...] = ()
    """The reply's signed reasoning blocks (``Reply.signed_reasoning``), sent back with the call."""


def parse_command(call: ToolCallDone) -> tuple[str | None, str]:
    """(the command, "") of a well-formed ``bash`` call, else (None, the tool error)."""
    if call.name != BASH_TOOL.name:
        return None, f"unknown tool {call.name!r}: the only tool is {BASH_TOOL.name!r}"
    try:
        args = json.loads(call.arguments)
    except ValueError as exc:
        return None, f"malformed arguments (not JSON: {exc})"
    command = args.get("command") if isinstance(args, dict) else None
    if not isinstance(command, str) or not command.strip():
        return None, 'malformed arguments: expected {"command": "<shell command>"}'
    return command, ""


class ToolsMode:
    """``tools`` mode: offer the ``bash`` tool, run the command of its first call."""

    name = "tools"

    async def attempt(self, race: Race, lane: Lane, messages: Messages, turn: int, sim: dict[str, Any] | None) -> Attempt:
        request = ChatRequest(
            messages=messages, max_tokens=race.max_tokens, lane=lane.name, turn=turn, sim=sim, tools=(BASH_TOOL,)
        )
        reply = await read_reply(race, lane, request)
        if lane.ended:
            return ToolAttempt(reply.text, None)
        cut = cut_reason(race, lane, reply)
        if cut:
            raise BackendError(cut)
        if reply.started > len(reply.calls) and not reply.calls:
            why = reply.ended.finish_reason if reply.ended is not None else None
            return ToolAttempt(reply.text, None, f"{CUT_MID_ARGUMENTS} (finish reason {why!r}): nothing ran")
        if not reply.natural:
            return ToolAttempt(reply.text, None, cut_detail(reply.ended, race.max_tokens))
        if not reply.calls:
            return ToolAttempt(reply.text, None, STOPPED, stopped=True)
        call = reply.calls[0]
        command, error = parse_command(call)
        return ToolAttempt(reply.text, command, error, call=call, signed_reasoning=reply.signed_reasoning)

    def follow_up(self, messages: Messages, attempt: Attempt, judged: Judgement, turns_left: int) -> Messages:
        more = f"You have {turns_left} more {'turn' if turns_left == 1 else 'turns'}."
        call = attempt.call if isinstance(attempt, ToolAttempt) else None
        if call is None:
            note = f"Your reply was cut before it ended ({judged.detail}). Call the bash tool with just the command. {more}"
            return messages + [{"role": "assistant", "content": attempt.text}, {"role": "user", "content": note}]
        arguments = call.arguments if attempt.command is not None else "{}"  # a protocol may need an object
        assistant: dict[str, Any] = {
            "role": "assistant",
            "content": attempt.text,
            "tool_calls": [{"id": call.call_id, "name": call.name, "arguments": arguments}],
        }
        if isinstance(attempt, ToolAttempt) and attempt.signed_reasoning:
            assistant["signed_reasoning"] = [dict(block) for block in attempt.signed_reasoning]
        return messages + [
            assistant,
            {"role": "tool", "tool_call_id": call.call_id, "name": call.name, "content": tool_result(judged, more)},
        ]


def tool_result(judged: Judgement, more: str) -> str:
    """The tool's answer after a failed turn: how the command ended, its
    output's tails, what was wrong (or the tool error)."""
    res = judged.result
    parts: list[str] = []
    if res is not None:
        parts.append(f"exit code: {res.exit_code}. {describe_exit(res)}")
        for name, text in (("stdout", res.stdout), ("stderr", res.stderr)):
            parts.append(f"{name}:\n{tail(text, FEEDBACK_OUTPUT_LIMIT).rstrip()}" if text.strip() else f"{name}: (empty)")
        parts.append(f"That did not solve the task: {judged.detail}.")
    else:
        parts.append(f"error: {judged.detail}; nothing ran.")
    parts.append(f"{more} Call the bash tool again.")
    return "\n\n".join(parts)


MODES: dict[str, LaneMode] = {"tools": ToolsMode(), "text": TextMode()}


def mode_for(spec: BackendSpec, task: TaskSpec | None = None) -> LaneMode:
    """The lane's mode: its backend's ``agent`` if it says one, else the
    task's ``agent``, else ``tools``."""
    return MODES[spec.agent or (task.agent if task is not None else "") or "tools"]


__all__ = ["BASH_TOOL", "CUT_MID_ARGUMENTS", "MODES", "STOPPED", "ToolAttempt", "ToolsMode", "mode_for", "parse_command"]
