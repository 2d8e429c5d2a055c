"""Real PostgreSQL 15 servers for the tests (Debian's postgresql-15, scripts/deps.sh test):
`Postgres(base)` is one server, `PgPair(base)` a primary with a synchronous standby, the
shape docs/CLUSTER.md asks for under `--ack=replica`. Both listen on 127.0.0.1 only, on free
ports, and are stopped by `stop()`. Only the standard library is used.

initdb refuses to run as root: as root every server command runs as the postgres user, and
`base` must be a directory that user can reach (not pytest's tmp_path, mode 0700): use
`make_base()`.
"""
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PG_BIN = os.environ.get("REEL_PG_BIN", "/usr/lib/postgresql/15/bin")


def available():
    """None when PostgreSQL 15 can run here, else why not (for pytest.skip)."""
    if not os.path.exists(os.path.join(PG_BIN, "initdb")) or not shutil.which("psql"):
        return ("PostgreSQL 15 is not installed (%s/initdb, psql): scripts/deps.sh test "
                "installs postgresql" % PG_BIN)
    return None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_base(prefix="reel-pg-"):
    return tempfile.mkdtemp(prefix=prefix)


@contextlib.contextmanager
def running(kind):
    """`with running(PgPair) as pg:` (or Postgres): a server in its own base directory,
    stopped and removed at the end, for module-scoped pytest fixtures."""
    base = make_base()
    pg = kind(base)
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


def _prefix():
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _own(path):
    if os.geteuid() == 0:
        shutil.chown(path, "postgres")


class Postgres:
    """One server. `extra` adds `-c name=value` settings."""

    def __init__(self, base, extra=None, data=None, initdb=True):
        self.base = str(base)
        _own(self.base)
        self.port = free_port()
        self.dsn = "host=127.0.0.1 port=%d user=reel dbname=postgres" % self.port
        self.data = data or os.path.join(self.base, "data-%d" % self.port)
        self.extra = dict(extra or {})
        if initdb:
            self.run([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-A", "trust",
                      "-U", "reel", "-E", "UTF8", "--no-sync"])
        self.start()

    def run(self, cmd, **kw):
        return subprocess.run(_prefix() + cmd, check=True, stdout=subprocess.DEVNULL,
                              timeout=120, **kw)

    def start(self):
        opts = "-c listen_addresses=127.0.0.1 -p %d -k %s -c max_connections=60" % (
            self.port, self.base)
        for k, v in self.extra.items():
            opts += " -c %s=%s" % (k, v)
        self.run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-o", opts,
                  "-l", os.path.join(self.base, "log-%d" % self.port), "-w", "start"])

    def pid(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def kill9(self):
        """kill -9 the postmaster and every backend (a machine loss, as far as a test can)."""
        pid = self.pid()
        if pid:
            subprocess.run(["pkill", "-9", "-P", str(pid)])
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop(self):
        subprocess.run(_prefix() + [os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m",
                                    "fast", "-w", "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)

    def query(self, sql, dsn=None):
        """Rows of 'sql' as a list of dicts (through json_agg)."""
        out = subprocess.run(["psql", dsn or self.dsn, "-X", "-At", "-v", "ON_ERROR_STOP=1",
                              "-c", "SELECT coalesce(json_agg(t), '[]') FROM (%s) t" % sql],
                             check=True, capture_output=True, timeout=60).stdout
        return json.loads(out)

    def execute(self, sql):
        subprocess.run(["psql", self.dsn, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
                       check=True, capture_output=True, timeout=60)


class PgPair:
    """A primary and a synchronous standby streaming from it. A commit on the primary returns
    only once the standby has flushed it (synchronous_commit=on, synchronous_standby_names
    '*'), so killing the primary and promoting the standby loses no committed transaction.

    `dsn` names both servers with target_session_attrs=read-write: libpq connects to
    whichever is the primary, before and after a promotion."""

    def __init__(self, base):
        self.base = str(base)
        self.primary = Postgres(self.base, extra={
            "wal_level": "replica", "max_wal_senders": "5", "synchronous_commit": "on",
            "synchronous_standby_names": "'*'", "wal_keep_size": "256MB"})
        sdata = os.path.join(self.base, "standby")
        self.primary.run([os.path.join(PG_BIN, "pg_basebackup"), "-h", "127.0.0.1", "-p",
                          str(self.primary.port), "-U", "reel", "-D", sdata, "-R", "-X",
                          "stream", "--no-sync"])
        self.standby = Postgres(self.base, data=sdata, initdb=False,
                                extra={"hot_standby": "on", "synchronous_commit": "on"})
        self.dsn = ("host=127.0.0.1,127.0.0.1 port=%d,%d user=reel dbname=postgres "
                    "target_session_attrs=read-write connect_timeout=3" % (
                        self.primary.port, self.standby.port))
        self.wait_sync()

    def wait_sync(self, timeout=30):
        """Waits until the primary counts the standby as synchronous."""
        end = time.time() + timeout
        while time.time() < end:
            rows = self.primary.query("SELECT sync_state FROM pg_stat_replication")
            if any(r["sync_state"] == "sync" for r in rows):
                return
            time.sleep(0.1)
        raise AssertionError("the standby never became synchronous")

    def kill_primary(self):
        self.primary.kill9()

    def promote(self):
        """Promotes the standby and waits until it accepts writes."""
        self.standby.run([os.path.join(PG_BIN, "pg_ctl"), "-D", self.standby.data, "-w",
                          "promote"])
        end = time.time() + 30
        while time.time() < end:
            if self.standby.query("SELECT pg_is_in_recovery() AS r")[0]["r"] is False:
                return
            time.sleep(0.1)
        raise AssertionError("the standby was not promoted")

    def stop(self):
        self.standby.stop()
        self.primary.stop()
