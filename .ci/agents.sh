#!/usr/bin/env bash
# Install the real coding agents that the agent-lane tests race (Claude Code,
# Codex CLI, OpenCode) from the npm registry at pinned versions, into a cache
# outside the repo keyed by version. Idempotent: with the cache filled it does
# no work. Prints the directory whose bin/ holds the agents.
#
#   CLAUDE_CODE_VERSION  @anthropic-ai/claude-code (2.1.332)
#   CODEX_VERSION        @openai/codex (0.171.0)
#   OPENCODE_VERSION     opencode-ai (1.18.33)
#   THUNDERDOME_CACHE    cache root (/var/cache/thunderdome)
set -euo pipefail

cache_root="${THUNDERDOME_CACHE:-/var/cache/thunderdome}"
prefix="$cache_root/agents"
packages=(
    "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION:-2.1.332}:claude"
    "@openai/codex@${CODEX_VERSION:-0.171.0}:codex"
    "opencode-ai@${OPENCODE_VERSION:-1.18.33}:opencode"
)

if ! command -v npm >/dev/null 2>&1; then
    echo "agents: installing Node.js and npm" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

mkdir -p "$prefix"
for entry in "${packages[@]}"; do
    spec="${entry%:*}"
    binary="${entry##*:}"
    stamp="$prefix/.installed-${spec//\//_}"
    if [ -f "$stamp" ] && [ -x "$prefix/bin/$binary" ]; then
        continue
    fi
    echo "agents: npm install $spec" >&2
    npm install --global --prefix "$prefix" --no-audit --no-fund --loglevel=error "$spec" >&2
    "$prefix/bin/$binary" --version >/dev/null
    touch "$stamp"
done

echo "$prefix"
