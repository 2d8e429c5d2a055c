"""agentlib -- shared harness for running the real agent CLIs through `reel run`.

Each tests/agents/test_<agent>.py drives one real agent CLI (installed from npm into
tests/agents/<agent>/node_modules by tests/agents/run.sh) against a scripted fake model API
on 127.0.0.1 (tests/agents/fake/*.mjs), in a temp sandbox, through `reel run --data DIR`.
Nothing here knows one agent: the per-agent knowledge lives in the test files and in
facts_<agent>.py, which reads the native output independently of reel's C converters.

  sb = sandbox(tmp_path)                       # sb.root, sb.home, sb.work, sb.data
  with Fake("anthropic.mjs") as api:           # api.url, api.requests()
      r = reel_run(sb, "s1", "claude", bin, ["--verbose"], "list the files", env)
  evs = events(sb.data, "s1"); t = transcript(sb.data, "s1")
  assert check_fidelity(facts, sb.data, "s1") == []
  save_golden("claude", "2.1.332", "multiturn", r.native_log, sb)

Rules: every process is bounded in time (timeouts below); servers listen on 127.0.0.1 only;
nothing outside the sandbox is written except golden cases when recording
(REEL_RECORD_GOLDEN=1).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
REEL = os.environ.get("REEL_BIN", str(ROOT / "build" / "reel"))
CASES = ROOT / "tests" / "cases" / "agents"
# Temp paths in recorded native output are replaced by this, so a re-recording shows only
# what the agent changed.
GOLDEN_ROOT = "/tmp/reel-ws"
RECORDING = os.environ.get("REEL_RECORD_GOLDEN") == "1"


# ---------------------------------------------------------------- sandbox


@dataclasses.dataclass
class Sandbox:
    root: Path  # everything below is inside root
    home: Path  # HOME (and XDG_* dirs) of the agent: nothing touches the real home
    work: Path  # the agent's workspace (its cwd)
    data: Path  # the reel data directory

    def env(self, **extra: str) -> dict[str, str]:
        """A minimal environment: PATH, HOME, XDG dirs, TMPDIR in the sandbox, plus extra."""
        tmp = self.root / "tmp"
        tmp.mkdir(exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "XDG_STATE_HOME": str(self.home / ".local" / "state"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "TMPDIR": str(tmp),
            "LANG": "C.UTF-8",
            "NO_COLOR": "1",
            "TERM": "dumb",
        }
        env.update(extra)
        return env


def sandbox(tmp_path: Path | None = None) -> Sandbox:
    root = Path(tempfile.mkdtemp(prefix="reel-agent-", dir=tmp_path))
    sb = Sandbox(root, root / "home", root / "work", root / "data")
    for d in (sb.home, sb.work):
        d.mkdir(parents=True)
    return sb


# ---------------------------------------------------------------- fake model servers


class Fake:
    """A fake model API: `node tests/agents/fake/<script> --log FILE [args]`.

    The script prints `listening http://127.0.0.1:PORT` as its first stdout line and appends
    one JSON object per request to FILE. Use as a context manager; requests() reads the log.
    """

    def __init__(self, script: str, args: list[str] | None = None, timeout: float = 20):
        self.log = Path(tempfile.mkstemp(prefix="reel-fake-", suffix=".jsonl")[1])
        path = HERE / "fake" / script
        self.proc = subprocess.Popen(
            ["node", str(path), "--log", str(self.log), *(args or [])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        import select

        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        m = re.match(r"listening (http://127\.0\.0\.1:\d+)", line)
        if not m:
            self.stop()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"fake {script} did not start: {line!r} {err[-2000:]}")
        self.url = m.group(1)

    def requests(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.unlink(missing_ok=True)

    def __enter__(self) -> "Fake":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------- running reel


@dataclasses.dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    native_log: Path  # the agent's stdout, byte for byte, as reel run received it

    def native_lines(self) -> list[str]:
        text = self.native_log.read_bytes().decode("utf-8", "replace")
        return [ln for ln in text.split("\n") if ln.strip()]


_TEE = """#!/bin/bash
# Runs the real agent and copies its stdout, as received, to a file (the golden input).
set -o pipefail
"$REEL_AGENT_REAL" "$@" | tee -a "$REEL_AGENT_NATIVE_LOG"
"""


def reel_run(
    sb: Sandbox,
    session: str,
    agent: str,
    agent_bin: str,
    agent_args: list[str],
    prompt: str,
    env: dict[str, str],
    reel_args: list[str] | None = None,
    timeout: float = 180,
) -> Run:
    """`reel run --data SB.data --session S --agent A --agent-bin <tee wrapper> [reel_args]
    -- AGENT_ARGS... PROMPT` in cwd sb.work with env. Each call gets its own native log."""
    n = len(list(sb.root.glob("native-*.jsonl")))
    native = sb.root / f"native-{n + 1}.jsonl"
    native.touch()
    tee = sb.root / "agent-tee.sh"
    if not tee.exists():
        tee.write_text(_TEE)
        tee.chmod(tee.stat().st_mode | stat.S_IXUSR)
    env = dict(env, REEL_AGENT_REAL=agent_bin, REEL_AGENT_NATIVE_LOG=str(native))
    cmd = [REEL, "run", "--data", str(sb.data), "--session", session, "--agent", agent,
           "--agent-bin", str(tee), *(reel_args or []), "--", *agent_args, prompt]
    p = subprocess.run(cmd, cwd=sb.work, env=env, capture_output=True, text=True,
                       timeout=timeout)
    return Run(p.returncode, p.stdout, p.stderr, native)


def reel(*args: str, timeout: float = 60) -> str:
    p = subprocess.run([REEL, *args], capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"reel {' '.join(args)}: exit {p.returncode}: {p.stderr}")
    return p.stdout


def events(data: Path, session: str) -> list[dict[str, Any]]:
    out = reel("tail", "--data", str(data), "--session", session, "--include-raw")
    return [json.loads(ln) for ln in out.splitlines() if ln.strip()]


def transcript(data: Path, session: str) -> dict[str, Any]:
    return json.loads(reel("transcript", "--data", str(data), "--session", session))


def transcript_md(data: Path, session: str) -> str:
    return reel("transcript", "--data", str(data), "--session", session, "--format", "markdown")


def stats(data: Path, session: str) -> dict[str, Any]:
    return json.loads(reel("stats", "--data", str(data), "--session", session, "--json"))


def version_of(binary: str, args: tuple[str, ...] = ("--version",), env: dict[str, str] | None = None) -> str:
    """The first dotted version number the binary prints for --version."""
    p = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, env=env)
    m = re.search(r"\d+\.\d+\.\d+(?:[-.+][0-9A-Za-z.-]+)?", p.stdout + p.stderr)
    if not m:
        raise RuntimeError(f"no version in {binary} {args}: {p.stdout!r} {p.stderr!r}")
    return m.group(0)


# ---------------------------------------------------------------- fidelity


@dataclasses.dataclass
class ToolFact:
    name: str
    input: Any  # the tool input as the native output gives it (dict, str, ...)
    result: str | None = None  # the tool result's text, None when the tool never returned
    failed: bool = False


@dataclasses.dataclass
class Facts:
    """What the native output says, read by facts_<agent>.py without reel's converters."""

    assistant_texts: list[str] = dataclasses.field(default_factory=list)
    tools: list[ToolFact] = dataclasses.field(default_factory=list)
    # the agent's own final totals, e.g. {"input_tokens": 10, "cost_usd": 0.01}
    usage: dict[str, float] = dataclasses.field(default_factory=dict)


def _norm(s: str) -> str:
    return " ".join(s.split())


def _strings(v: Any, out: list[str]) -> None:
    """Every string in v (recursively); strings that are JSON objects/arrays are also
    parsed and their strings added (tool arguments are often stored as JSON text)."""
    if isinstance(v, str):
        out.append(v)
        t = v.lstrip()
        if t[:1] in ("{", "["):
            try:
                _strings(json.loads(v), out)
            except ValueError:
                pass
    elif isinstance(v, dict):
        for k, x in v.items():
            out.append(k)
            _strings(x, out)
    elif isinstance(v, list):
        for x in v:
            _strings(x, out)
    elif v is not None and not isinstance(v, bool):
        out.append(json.dumps(v))


def _leaves(v: Any) -> list[str]:
    """The leaf values of a tool input, as strings, for a membership check."""
    out: list[str] = []
    if isinstance(v, dict):
        for x in v.values():
            out += _leaves(x)
    elif isinstance(v, list):
        for x in v:
            out += _leaves(x)
    elif isinstance(v, str):
        if v.strip():
            out.append(v)
    elif v is not None and not isinstance(v, bool):
        out.append(json.dumps(v))
    return out


def check_fidelity(facts: Facts, data: Path, session: str) -> list[str]:
    """Problems (empty when faithful): every assistant text, tool name, tool input leaf and
    tool result of `facts` must appear in the session's transcript (reel transcript JSON,
    raw lines excluded: they are not what a reader sees), whitespace-normalized; usage totals
    must equal facts.usage in both the transcript and reel stats."""
    t = transcript(data, session)
    hay_list: list[str] = []
    _strings({k: v for k, v in t.items() if k not in ("unparsed",)}, hay_list)
    hay = "\n".join(_norm(s) for s in hay_list)
    names = set(hay_list)
    problems = []
    for text in facts.assistant_texts:
        if _norm(text) and _norm(text) not in hay:
            problems.append(f"assistant text missing: {text[:120]!r}")
    for tool in facts.tools:
        if tool.name not in names:
            problems.append(f"tool name missing: {tool.name!r}")
        for leaf in _leaves(tool.input):
            if _norm(leaf) not in hay:
                problems.append(f"tool {tool.name} input value missing: {leaf[:120]!r}")
        if tool.result is not None and _norm(tool.result) and _norm(tool.result) not in hay:
            problems.append(f"tool {tool.name} result missing: {tool.result[:120]!r}")
    if t.get("unparsed"):
        problems.append(f"{len(t['unparsed'])} agent.unparsed events")
    st = stats(data, session)
    for key, want in facts.usage.items():
        for where, got in (("transcript", t.get("usage", {}).get(key)),
                           ("stats", st.get("usage", {}).get(key))):
            if got is None or abs(float(got) - float(want)) > 1e-9 * max(1.0, abs(float(want))):
                problems.append(f"usage {key}: {where} has {got}, the agent says {want}")
    return problems


# ---------------------------------------------------------------- golden cases


def save_golden(agent: str, version: str, scenario: str, native: Path | list[Path], sb: Sandbox) -> Path:
    """The golden folder tests/cases/agents/<agent>/<version>-<scenario>/ for this run.

    When recording (REEL_RECORD_GOLDEN=1), writes its input.jsonl from the native log(s)
    (several logs, e.g. a run and its resume, are concatenated), with the sandbox path
    replaced by /tmp/reel-ws, and removes a stale expected.jsonl (the recording command
    then regenerates it with REEL_UPDATE_GOLDEN=1). Otherwise asserts the folder exists."""
    d = CASES / agent / f"{version}-{scenario}"
    if not RECORDING:
        assert (d / "input.jsonl").exists(), (
            f"no golden case {d.relative_to(ROOT)} for this version: run `make record-agents`")
        return d
    d.mkdir(parents=True, exist_ok=True)
    logs = native if isinstance(native, list) else [native]
    text = b"".join(p.read_bytes() for p in logs).decode("utf-8", "surrogateescape")
    for real in {str(sb.root), os.path.realpath(sb.root)}:
        text = text.replace(real, GOLDEN_ROOT)
        # the form agents use in folder names (Claude Code's projects/-tmp-...)
        text = text.replace(real.replace("/", "-"), GOLDEN_ROOT.replace("/", "-"))
    (d / "input.jsonl").write_bytes(text.encode("utf-8", "surrogateescape"))
    exp = d / "expected.jsonl"
    if exp.exists():
        exp.unlink()
    exp.touch()
    return d


def cleanup(sb: Sandbox) -> None:
    shutil.rmtree(sb.root, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover
    print(__doc__)
    sys.exit(0)
