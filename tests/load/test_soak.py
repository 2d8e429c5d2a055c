"""The soak (soak.py, `make soak`) in short: 15 s of the mixed load (REEL_SOAK_SECONDS to
change it), which must pass every end-of-run check; and the end-of-run checker shown able
to fail."""
import os
import subprocess
import sys

from loadlib import REEL_BIN, Server, check_acked

HERE = os.path.dirname(os.path.abspath(__file__))
SECONDS = int(os.environ.get("REEL_SOAK_SECONDS", "15"))


def test_short_soak():
    out = os.path.join(os.path.dirname(REEL_BIN), "load", "soak-quick")
    p = subprocess.run([sys.executable, os.path.join(HERE, "soak.py"), "--seconds",
                        str(SECONDS), "--out", out], capture_output=True, text=True,
                       timeout=SECONDS + 300)
    print(p.stdout[-3000:], p.stderr[-3000:])
    assert p.returncode == 0 and "soak: PASS" in p.stdout, p.stdout[-3000:] + p.stderr[-3000:]


def test_checker_flags_lost_moved_and_gaps(workdir):
    """check_acked() must report an acknowledged event that is not there, one at another
    sequence, and a session whose sequences do not start at 1 (a page read from offset 1
    stands in for a gap)."""
    srv = Server(workdir, args=["--sync", "none"]).start()
    try:
        st, ans = srv.append("s", [{"type": "t", "event_id": "a"}, {"type": "t", "event_id": "b"}])
        assert st == 200
        assert check_acked(srv, {"s": {"a": 1, "b": 2}}) == []
        problems = check_acked(srv, {"s": {"a": 1, "b": 3, "never": 4}})
        assert len(problems) == 1 and "2 acknowledged events missing or moved" in problems[0]
        real = srv.events
        srv.events = lambda session, offset=0: real(session, 1)
        assert any("not 1..1" in p for p in check_acked(srv, {"s": {"b": 2}}))
    finally:
        srv.stop()
