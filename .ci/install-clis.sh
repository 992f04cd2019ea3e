#!/usr/bin/env bash
# Install the pinned real agent CLIs (Claude Code, Codex) into <repo>/.clis/ with npm.
#
# Idempotent: when both pinned versions are already installed it installs nothing.
# Prints the two binary paths, one per line (claude first, then codex).
# Tests find them through tests/agent_clis.py; see docs/agent-clis.md for why these versions.
set -euo pipefail

# Pinned; docs/agent-clis.md says why. The FARMBOT_* variables exist to capture screens of
# another version into another directory (FARMBOT_CLIS_DIR), never for CI.
CLAUDE_VERSION="${FARMBOT_CLAUDE_VERSION:-2.1.332}"
CODEX_VERSION="${FARMBOT_CODEX_VERSION:-0.171.0}"

repo="$(cd "$(dirname "$0")/.." && pwd)"
dest="${FARMBOT_CLIS_DIR:-$repo/.clis}"
claude_bin="$dest/node_modules/@anthropic-ai/claude-code/bin/claude.exe"

installed_version() {  # package.json "version" of an installed package, or nothing
  local manifest="$dest/node_modules/$1/package.json"
  [ -f "$manifest" ] || return 0
  node -e 'process.stdout.write(require(process.argv[1]).version)' "$manifest"
}

codex_bin() {
  local found
  found="$(ls "$dest"/node_modules/@openai/codex-linux-*/vendor/*/bin/codex 2>/dev/null | head -n1)"
  printf '%s' "$found"
}

ready() {
  [ "$(installed_version @anthropic-ai/claude-code)" = "$CLAUDE_VERSION" ] &&
    [ "$(installed_version @openai/codex)" = "$CODEX_VERSION" ] &&
    [ -x "$claude_bin" ] && [ -n "$(codex_bin)" ] &&
    # Until its postinstall ran, bin/claude.exe is a 500-byte stub that prints a hint.
    "$claude_bin" --version 2>/dev/null | grep -q "^$CLAUDE_VERSION "
}

if ! ready; then
  command -v npm >/dev/null 2>&1 || { echo "install-clis: npm not found (apt-get install npm)" >&2; exit 1; }
  mkdir -p "$dest"
  [ -f "$dest/package.json" ] || echo '{"private": true, "name": "farmbot-agent-clis"}' >"$dest/package.json"
  echo "install-clis: installing claude-code $CLAUDE_VERSION and codex $CODEX_VERSION into $dest" >&2
  # --ignore-scripts, then the one postinstall we need, run by name: Claude's install.cjs
  # copies the native binary of @anthropic-ai/claude-code-linux-x64 over the bin/claude.exe
  # stub (2.1.332 ships a stub; 2.1.197 shipped the binary itself). Codex needs none.
  (cd "$dest" && npm install --no-audit --no-fund --no-update-notifier --ignore-scripts \
    --loglevel=error --save-exact \
    "@anthropic-ai/claude-code@$CLAUDE_VERSION" "@openai/codex@$CODEX_VERSION" >&2 &&
    node node_modules/@anthropic-ai/claude-code/install.cjs >&2)
  ready || { echo "install-clis: install finished but the binaries are missing" >&2; exit 1; }
fi

echo "$claude_bin"
codex_bin
echo
