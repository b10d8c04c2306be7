"""A tiny coding agent for ``program: command`` lanes (standard library only, run by the sandbox's python3).

``python3 agent.py BASE_URL KEY [PROMPT]`` (the prompt defaults to the work
dir's ``prompt.txt``): ask the gateway once, offering one ``bash`` tool; run
the command the reply calls (then wait ``TOOL_PAUSE`` seconds, if set: a
slower tool); ask again with its output; print the answer.
"""

AGENT = r'''
import json, os, subprocess, sys, time, urllib.request
base, key = sys.argv[1], sys.argv[2]
prompt = sys.argv[3] if len(sys.argv) > 3 else open("prompt.txt").read()
tools = [{"type": "function", "function": {"name": "bash", "parameters": {
    "type": "object", "properties": {"command": {"type": "string"}}}}}]
messages = [{"role": "user", "content": prompt}]
side = os.environ.get("SIDE_REQUESTS") == "1"
def send(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    return urllib.request.Request(base + path, data=data,
                                  headers={"content-type": "application/json", "authorization": "Bearer " + key})
if side:
    json.load(urllib.request.urlopen(send("/v1/models"), timeout=10))
def ask():
    body = {"model": "any", "stream": True, "messages": messages, "tools": tools}
    req = send("/v1/chat/completions", body)
    text, args, call_id = "", "", None
    for line in urllib.request.urlopen(req, timeout=10):
        if not line.startswith(b"data: {"):
            continue
        delta = json.loads(line[6:])["choices"][0]["delta"]
        text += delta.get("content") or ""
        for call in delta.get("tool_calls") or []:
            call_id = call.get("id") or call_id
            args += call["function"].get("arguments") or ""
    return text, args, call_id
_, args, call_id = ask()
command = json.loads(args)["command"]
out = subprocess.run(["bash", "-c", command], capture_output=True, text=True).stdout
time.sleep(float(os.environ.get("TOOL_PAUSE", "0")))  # a slower tool, when the lane asks for one
if side:
    title = {"model": "small", "stream": False, "messages": [{"role": "user", "content": "a title for: " + prompt}]}
    json.load(urllib.request.urlopen(send("/v1/chat/completions", title), timeout=10))
messages += [{"role": "assistant", "content": None, "tool_calls": [{"id": call_id, "type": "function",
              "function": {"name": "bash", "arguments": args}}]},
             {"role": "tool", "tool_call_id": call_id, "content": out}]
print(ask()[0])
'''


def inline_command() -> str:
    """A ``program: command`` template that runs ``AGENT`` from a here-document (no file
    needed); ``exec``: the agent is the process the lane started (an arena fighter)."""
    return "exec python3 - {base_url} {api_key} {prompt} <<'PY'\n" + AGENT.strip() + "\nPY\n"
