"""reel run progress lines (issue 17): one line per tool call, turn and error on stderr
when it is a terminal or with --progress; --quiet silences them; the session record
names the agent."""
import json
import os
import pty
import subprocess

from clihelp import REEL


def run(reel, session, *args, scenario="tools", stderr=subprocess.PIPE):
    return subprocess.run([REEL, "run", "--data", reel.data, "--session", session, "--agent", "mock",
                           *args, "--", "--delay", "0", "--scenario", scenario, "go"],
                          stdout=subprocess.PIPE, stderr=stderr, timeout=60)


def test_forced_progress_prints_tools_turns_and_a_summary(reel):
    p = run(reel, "s", "--progress")
    lines = [l for l in p.stderr.decode().splitlines() if l.startswith("[")]
    assert lines == ["[tool] Bash ls",
                     "[tool] Bash cat missing.txt",
                     "[failed] Bash: cat: missing.txt: No such file or directory",
                     "[turn 1] There are three entries; missing.txt does not exist. (100 in, 40 out)",
                     "[done] 1 turn, 100 tokens in, 40 out, $0.0125"], lines
    # --progress wins over --quiet for the progress lines; the summary stays quiet
    q = run(reel, "s2", "--progress", "--quiet")
    assert [l for l in q.stderr.decode().splitlines() if l.startswith("[")] == lines
    assert b"reel run:" not in q.stderr


def test_errors_and_the_end_reason_are_shown(reel):
    p = run(reel, "e", "--progress", scenario="error")
    err = p.stderr.decode()
    assert "[error] API Error: 529 overloaded" in err
    assert "[done] 1 turn, 10 tokens in, 0 out, $0.0010 (error)" in err


def test_silent_when_stderr_is_not_a_terminal_or_quiet(reel):
    p = run(reel, "s")
    assert b"[tool]" not in p.stderr and b"[done]" not in p.stderr
    assert b"reel run: mock exited 0" in p.stderr


def test_on_by_default_on_a_terminal_and_quiet_silences_it(reel):
    for args, want in (((), True), (("--quiet",), False)):
        master, slave = pty.openpty()
        try:
            p = run(reel, "t" + str(len(args)), *args, stderr=slave)
        finally:
            os.close(slave)
        out = b""
        try:
            while True:
                chunk = os.read(master, 65536)
                if not chunk:
                    break
                out += chunk
        except OSError:
            pass
        os.close(master)
        assert p.returncode == 0
        assert (b"[done] 1 turn" in out) == want, out


def test_run_and_stats_name_the_agent(reel):
    run(reel, "s")
    rec = json.loads(reel.run("sessions", "--json").stdout)
    assert rec["agent"] == "mock"
    st = json.loads(reel.run("stats", "--json").stdout)
    assert list(st["by_agent"]) == ["mock"]
