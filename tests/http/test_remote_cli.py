"""Remote CLI parity (issue 20): each reading subcommand's output through --server (with a
token) equals its output on the data directory, byte for byte; errors name the server."""
import json
import os
import subprocess

import pytest

from conftest import REEL_BIN

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CLAUDE = os.path.join(ROOT, "tests", "cases", "agents", "claude", "basic", "input.jsonl")


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    from conftest import Server
    s = Server(tmp_path_factory.mktemp("remote"), args=["--token", "tok"], token="tok")
    s.start()
    subprocess.run([REEL_BIN, "ingest", "--data", s.data, "--session", "team/c ü", "--format",
                    "claude", "--quiet", CLAUDE], check=True)
    for i in range(3):
        s.append("s%d" % i, [{"type": "item.delta" if j % 7 else "error", "data": {"i": j, "x": 1.5e300}}
                             for j in range(1200)])
    s.append("s1", [{"type": "session.ended", "data": {"reason": "completed"}}])
    yield s
    s.stop()


def out(*args):
    p = subprocess.run([REEL_BIN, *args], capture_output=True, timeout=120)
    return p.returncode, p.stdout


CASES = [
    ["tail"], ["tail", "--include-raw", "--limit", "1500"], ["tail", "--session", "team/c ü"],
    ["tail", "--session", "s2", "--after", "10", "--types", "error"], ["tail", "--types", "error,usage"],
    ["sessions"], ["sessions", "--json"], ["sessions", "--order", "id", "--json", "--prefix", "s"],
    ["sessions", "--status", "ended"], ["sessions", "--agent", "claude", "--json"],
    ["transcript", "--session", "team/c ü"], ["transcript", "--session", "team/c ü", "--format", "markdown"],
    ["transcript", "--session", "s1", "--at", "5"],
    ["restore", "--session", "team/c ü"], ["restore", "--session", "s0", "--json", "--max-events", "20"],
    ["restore", "--session", "team/c ü", "--fit", "sdk", "--max-chars", "500"],
    ["stats"], ["stats", "--json"], ["stats", "--session", "s1", "--json"],
    ["stats", "--after", "10", "--until", "2000", "--json"],
    ["verify", "--session", "s2", "--json"],
]


@pytest.mark.parametrize("args", CASES, ids=[" ".join(a) for a in CASES])
def test_remote_output_equals_local_output(filled, args):
    local = out(*args, "--data", filled.data)
    remote = out(*args, "--server", "http://127.0.0.1:%d" % filled.port, "--token", "tok")
    assert local[0] == 0 and remote == local


def test_remote_export_holds_the_same_records_and_events(filled, tmp_path):
    def body(args):
        code, text = out("export", "--compression", "none", "--quiet", *args)
        assert code == 0
        return [ln for ln in text.split(b"\n") if ln and b'"record":"export"' not in ln
                and b'"record":"check"' not in ln and b'"record":"end"' not in ln]
    remote = ["--server", "http://127.0.0.1:%d" % filled.port, "--token", "tok"]
    for extra in ([], ["--session", "s1"], ["--after", "5", "--until", "900"]):
        assert body(extra + ["--data", filled.data]) == body(extra + remote)
    f = tmp_path / "r.zst"
    assert out("export", "-o", str(f), *remote)[0] == 0
    p = subprocess.run([REEL_BIN, "import", "--data", str(tmp_path / "copy"), str(f)],
                       capture_output=True, text=True)
    total = json.loads(out("stats", "--json", "--data", filled.data)[1])["events"]
    assert p.returncode == 0 and "%d events appended" % total in p.stderr, p.stderr


def test_remote_errors_name_the_server_and_the_problem(filled):
    url = "http://127.0.0.1:%d" % filled.port
    p = subprocess.run([REEL_BIN, "tail", "--server", url, "--session", "nope", "--token", "tok"],
                       capture_output=True, text=True)
    assert p.returncode == 1 and url in p.stderr and "404" in p.stderr and "'nope'" in p.stderr
    p = subprocess.run([REEL_BIN, "sessions", "--server", url, "--token", "wrong"],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "401" in p.stderr and "not valid" in p.stderr
    p = subprocess.run([REEL_BIN, "stats", "--server", "http://127.0.0.1:1"], capture_output=True, text=True)
    assert p.returncode == 1 and "could not connect" in p.stderr
    p = subprocess.run([REEL_BIN, "verify", "--server", url, "--token", "tok"], capture_output=True, text=True)
    assert p.returncode == 2 and "--session" in p.stderr
    env = dict(os.environ, REEL_SERVER=url, REEL_TOKEN="tok")
    p = subprocess.run([REEL_BIN, "sessions", "--json", "--limit", "1"], capture_output=True, text=True, env=env)
    assert p.returncode == 0 and json.loads(p.stdout)["id"]
