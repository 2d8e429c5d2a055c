"""What an operator sees first (issue 20): the URLs serve prints, / sending a browser to the
inspector, the version in /v1/health and /metrics, and --listen values refused by name."""
import re
import subprocess

from conftest import REEL_BIN


def test_serve_prints_the_url_and_the_inspector_and_no_warning_on_loopback(server):
    text = server.log_text()
    assert re.search(r"listening on http://127\.0\.0\.1:%d/ " % server.port, text), text
    assert "inspector at http://127.0.0.1:%d/ui/" % server.port in text, text
    assert "WARNING" not in text


def test_root_redirects_to_the_inspector_relative_so_a_path_prefix_survives(server):
    r = server.get("/", auth=False)
    assert r.status == 302
    assert r.header("Location") == "ui/"
    r = server.get("/ui/", auth=False)
    assert r.status == 200 and b"<html" in r.body.lower()


def test_health_and_metrics_carry_the_version_and_commit(server):
    out = subprocess.run([REEL_BIN, "--version"], capture_output=True, text=True, check=True).stdout
    m = re.fullmatch(r"reel (\d+\.\d+\.\d+) \(commit ([0-9a-z-]+)\)\n", out)
    assert m, out
    h = server.get("/v1/health").json
    assert h["status"] == "ok" and h["version"] == m.group(1) and h["commit"] == m.group(2)
    metrics = server.get("/metrics").body.decode()
    assert 'reel_build_info{version="%s",commit="%s"} 1\n' % m.groups() in metrics


def test_version_command_and_flag_agree():
    outs = {subprocess.run([REEL_BIN, a], capture_output=True, text=True, check=True).stdout
            for a in ("--version", "version", "-V")}
    assert len(outs) == 1
    assert "version" in subprocess.run([REEL_BIN, "--help"], capture_output=True, text=True).stdout


def test_listen_port_out_of_range_or_not_a_number_is_refused(tmp_path):
    for port in ("99999", "65536", "80x", "-1", "1234567"):
        p = subprocess.run([REEL_BIN, "serve", "--data", str(tmp_path / "d"), "--listen",
                            "127.0.0.1:" + port], capture_output=True, text=True, timeout=10)
        assert p.returncode == 2, (port, p.stderr)
        assert "'%s'" % port in p.stderr and "0 to 65535" in p.stderr, p.stderr
    p = subprocess.run([REEL_BIN, "serve", "--data", str(tmp_path / "d"), "--listen",
                        "no-such-host.invalid:2469"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "no-such-host.invalid" in p.stderr, p.stderr
