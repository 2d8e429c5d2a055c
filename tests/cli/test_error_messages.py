"""Error messages name the thing (issue 20, item 6)."""
import socket

from clihelp import Reel  # noqa: F401  (the fixture's type)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_unknown_session_is_named_by_every_command(reel):
    reel.ingest("one", [{"type": "x"}])
    for cmd in (["verify"], ["tail"], ["stats"], ["transcript"], ["restore"], ["export", "-o", "/dev/null"]):
        p = reel.run(*cmd, "--session", "nope", check=False)
        assert p.returncode == 1, cmd
        assert b"no session 'nope' in this data directory" in p.stderr, (cmd, p.stderr)


def test_replay_to_a_server_that_is_down_says_it_could_not_connect(reel):
    reel.ingest("one", [{"type": "x"}])
    url = "http://127.0.0.1:%d/hook" % closed_port()
    p = reel.run("replay", "--to", url, check=False)
    assert p.returncode == 1
    assert b"could not connect" in p.stderr and url.encode() in p.stderr, p.stderr


def test_range_messages_say_from_and_to_and_the_value(reel):
    reel.ingest("one", [{"type": "x"}])
    p = reel.run("export", "--level", "99", "-o", "/dev/null", check=False)
    assert p.returncode == 2 and b"--level must be from 1 to 19, not 99" in p.stderr, p.stderr
