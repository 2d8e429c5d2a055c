#!/bin/sh
# Records golden cases from a real ACP agent: @zed-industries/claude-code-acp (pinned in
# package.json / package-lock.json) driving Claude Code against fake_anthropic.mjs, a
# scripted Anthropic Messages API on 127.0.0.1 (offline). Each scenario runs through
# `reel run --agent acp`; the lines both sides wrote (the 'raw' of each event, stdin and
# stdout in order, stderr left out) become
# tests/cases/agents/acp/claude-code-acp-<version>-<scenario>/input.jsonl (temp paths as
# /tmp/reel-ws), then the expected files are rewritten: review the diff (agent.unparsed
# must stay 0). Usage: tests/cli/acp_real/record.sh [BUILD_DIR]   (about 20 s)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
reel="$root/${1:-build}/reel"
cd "$here"
[ -d node_modules ] || npm ci --ignore-scripts --no-audit --no-fund >/dev/null
version=$(node -p 'require("./node_modules/@zed-industries/claude-code-acp/package.json").version')
tmp=$(mktemp -d)
trap 'kill $fake 2>/dev/null; rm -rf "$tmp"' EXIT
node fake_anthropic.mjs "$tmp/fake.log" > "$tmp/fake.out" &
fake=$!
while ! grep -q listening "$tmp/fake.out" 2>/dev/null; do sleep 0.1; done
port=$(sed -n 's/.*127.0.0.1://p' "$tmp/fake.out")
mkdir -p "$tmp/home" "$tmp/ws"
echo hi > "$tmp/ws/a.txt"
run() { # session prompt
    (cd "$tmp/ws" && IS_SANDBOX=1 HOME="$tmp/home" ANTHROPIC_BASE_URL="http://127.0.0.1:$port" \
        ANTHROPIC_API_KEY=sk-fake DISABLE_TELEMETRY=1 DISABLE_ERROR_REPORTING=1 \
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1 \
        timeout 120 "$reel" run --data "$tmp/data" --session "$1" --agent acp --quiet \
        --agent-bin "$here/node_modules/.bin/claude-code-acp" "$2")
}
save() { # session run-index scenario
    dir="$root/tests/cases/agents/acp/claude-code-acp-$version-$3"
    mkdir -p "$dir"
    "$reel" tail --data "$tmp/data" --session "$1" --include-raw |
        python3 -c '
import json, re, sys
run, ws = int(sys.argv[1]), sys.argv[2]
runs, seen, out = [], set(), []
for line in sys.stdin:
    e = json.loads(line)
    rid, _, local = e["event_id"].partition("/")
    if rid not in runs:
        runs.append(rid)
    m = re.fullmatch(r"([oi])(\d+)\.\d+", local)
    if runs.index(rid) != run or not m or e["raw"] is None or (rid, local.split(".")[0]) in seen:
        continue
    seen.add((rid, local.split(".")[0]))
    out.append(json.dumps(e["raw"], ensure_ascii=False, separators=(",", ":")).replace(ws, "/tmp/reel-ws"))
print("\n".join(out))' "$2" "$tmp/ws" > "$dir/input.jsonl"
    echo "$dir: $(wc -l < "$dir/input.jsonl") lines"
}
run tools "List the files, then read missing.txt"
run tools "Again please"
run perm "Delete a.txt"
save tools 0 tools
save tools 1 resume
save perm 0 refused-permission
cd "$root" && REEL_UPDATE_GOLDEN=1 "$root/${1:-build}/unit" --filter 'agents_golden/acp*' >/dev/null
