"""Packaging (issue 20): make install with PREFIX/DESTDIR, the man page and completions
generated from --help, make deb, and the container image when a docker daemon runs."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.relpath(os.path.dirname(os.path.abspath(
    os.environ.get("REEL_BIN", os.path.join(ROOT, "build", "reel")))), ROOT)


def make(*args, timeout=300):
    return subprocess.run(["make", "--no-print-directory", "-s", f"BUILD={BUILD}", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    dest = tmp_path_factory.mktemp("install")
    p = make("install", "PREFIX=/usr", f"DESTDIR={dest}")
    assert p.returncode == 0, p.stderr
    return dest


def test_make_install_puts_everything_under_destdir_prefix(installed):
    files = sorted(os.path.relpath(os.path.join(d, f), installed)
                   for d, _, fs in os.walk(installed) for f in fs)
    assert files == ["usr/bin/reel", "usr/lib/systemd/system/reel.service",
                     "usr/share/bash-completion/completions/reel", "usr/share/man/man1/reel.1.gz",
                     "usr/share/zsh/vendor-completions/_reel"]
    out = subprocess.run([str(installed / "usr/bin/reel"), "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith("reel ")
    unit = (installed / "usr/lib/systemd/system/reel.service").read_text()
    assert "ExecStart=/usr/bin/reel serve" in unit and "Type=notify" in unit


def test_man_page_has_every_command_and_option(installed):
    import gzip
    page = gzip.decompress((installed / "usr/share/man/man1/reel.1.gz").read_bytes()).decode()
    assert page.startswith(".TH REEL 1")
    for cmd in ("serve", "ingest", "tail", "export", "import", "backup", "run", "verify"):
        assert f".SS reel {cmd}" in page, cmd
    assert "\\-\\-access\\-log" in page or "--access-log" in page
    if shutil.which("man"):
        p = subprocess.run(["man", "-l", "-"], input=page, capture_output=True, text=True,
                           env=dict(os.environ, MANWIDTH="100", MAN_KEEP_FORMATTING="0"), timeout=60)
        assert p.returncode == 0 and "reel serve" in p.stdout


def complete_bash(script, words):
    cmd = f'source "{script}"; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}}-1)); _reel; printf "%s\\n" "${{COMPREPLY[@]}}"'
    return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, check=True).stdout.split()


def test_bash_completion_completes_commands_and_options(installed):
    script = installed / "usr/share/bash-completion/completions/reel"
    assert complete_bash(script, "reel se") == ["serve", "sessions"]
    assert complete_bash(script, "reel tail --inc") == ["--include-raw"]
    assert "--access-log" in complete_bash(script, "reel serve --")
    assert complete_bash(script, "reel --vers") == ["--version"]


@pytest.mark.skipif(not shutil.which("zsh"), reason="zsh missing (make deps installs it)")
def test_zsh_completion_parses(installed):
    p = subprocess.run(["zsh", "-n", str(installed / "usr/share/zsh/vendor-completions/_reel")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


@pytest.mark.skipif(BUILD != "build", reason="a package is made from the release build (a sanitizer "
                    "build needs its runtime, which no package depends on)")
def test_make_deb_builds_a_package_whose_binary_runs(tmp_path):
    p = make("deb")
    assert p.returncode == 0, p.stderr
    deb = os.path.join(ROOT, p.stdout.strip().splitlines()[-1])
    info = subprocess.run(["dpkg-deb", "--field", deb, "Package", "Version", "Depends"],
                          capture_output=True, text=True, check=True).stdout
    assert "Package: reel" in info
    subprocess.run(["dpkg-deb", "-x", deb, str(tmp_path)], check=True)
    out = subprocess.run([str(tmp_path / "usr/bin/reel"), "--version"], capture_output=True,
                         text=True, check=True).stdout
    assert out.split()[1] in info
    # every library the binary needs directly is in a package the control file depends on
    needed = subprocess.run(["readelf", "-d", str(tmp_path / "usr/bin/reel")], capture_output=True,
                            text=True, check=True).stdout
    ldd = subprocess.run(["ldd", str(tmp_path / "usr/bin/reel")], capture_output=True, text=True,
                         check=True).stdout
    where = {ln.split()[0]: ln.split()[2] for ln in ldd.splitlines() if "=>" in ln}
    depends = info.split("Depends:", 1)[1]
    for lib in [ln.split("[", 1)[1].split("]", 1)[0] for ln in needed.splitlines() if "NEEDED" in ln]:
        real = os.path.realpath(where[lib])
        candidates = {where[lib], real, real.replace("/usr/lib/", "/lib/", 1)}
        pkg = next((out.split(":")[0] for out in (
            subprocess.run(["dpkg", "-S", c], capture_output=True, text=True).stdout
            for c in sorted(candidates)) if out), "")
        # libcrypto.so.3 is in libssl3
        assert pkg and pkg in depends, (lib, pkg, depends)


def docker_ok():
    return shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True,
                                                     timeout=30).returncode == 0


@pytest.mark.skipif(not docker_ok(), reason="no docker daemon here: the image is built and "
                    "smoke-tested only where one runs (make docker)")
def test_docker_image_serves_and_is_healthy():
    tag = "reel-test:latest"
    subprocess.run(["docker", "build", "-f", "packaging/Dockerfile", "-t", tag, "."], cwd=ROOT,
                   check=True, timeout=1800)
    cid = subprocess.run(["docker", "run", "-d", "-p", "127.0.0.1::2469", "-e", "REEL_TOKEN=t",
                          tag], capture_output=True, text=True, check=True).stdout.strip()
    try:
        import json
        import time
        for _ in range(60):
            st = json.loads(subprocess.run(["docker", "inspect", cid], capture_output=True,
                                           text=True).stdout)[0]["State"]
            if st.get("Health", {}).get("Status") == "healthy":
                break
            time.sleep(1)
        assert st["Health"]["Status"] == "healthy"
        user = subprocess.run(["docker", "exec", cid, "id", "-u"], capture_output=True,
                              text=True).stdout.strip()
        assert user != "0"
    finally:
        subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
