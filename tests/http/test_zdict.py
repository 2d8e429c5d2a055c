"""Compression dictionaries through the server (docs/FORMAT.md section 15, issue 19): a store
that passes STORE_ZDICT_FIRST events trains one by itself; events written before and after
it read the same with and without the event cache and with --zdict off; `reel verify`
passes; a server with --zdict off writes no dictionary."""
import re
import subprocess
import time

from conftest import REEL_BIN

FIRST = 1024  # STORE_ZDICT_FIRST
EVENTS = [{"type": "item.delta", "event_id": "e%d" % i,
           "data": {"item_id": "itm_%d" % (i // 9), "delta": "word %d of the reply " % i * (1 + i % 5)},
           "raw": {"type": "stream_event", "text": "word %d of the reply " % i * (1 + i % 5)}}
          for i in range(FIRST + 300)]


def load(s, session="z"):
    for i in range(0, len(EVENTS), 100):
        assert s.append(session, EVENTS[i:i + 100]).status == 200


def pages(s, session="z"):
    out = [s.get("/v1/sessions/%s/events?offset=%d&limit=100" % (session, o)).body
           for o in (0, 500, FIRST - 50, FIRST + 200)]
    out.append(s.get("/v1/sessions/%s/events?offset=%d&limit=100&include_raw=true"
                     % (session, FIRST + 100)).body)
    return out


def verify(data):
    r = subprocess.run([REEL_BIN, "verify", "--data", data], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def zdict_records(data):
    """How many dictionary records the store has, from `mdb_dump -s meta` (LMDB readers do
    not block the server)."""
    r = subprocess.run(["mdb_dump", "-s", "meta", data], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return len(re.findall(r"^ 7a64696374", r.stdout, re.M))  # "zdict"


def test_dictionary_trained_and_reads_unchanged(server_factory):
    s = server_factory(args=["--sync", "none"])   # dictionaries are on by default
    load(s)
    for _ in range(100):
        if zdict_records(s.data) >= 1:
            break
        time.sleep(0.05)
    assert zdict_records(s.data) == 1
    load(s, "y")  # written with the dictionary
    first = pages(s) + pages(s, "y")
    again = pages(s) + pages(s, "y")  # from the event cache
    assert first == again
    s.stop()
    verify(s.data)
    for args in (["--event-cache-mb", "0"], ["--zdict", "off"]):
        s.args = ["--sync", "none"] + args
        s.start()
        assert pages(s) + pages(s, "y") == first
        s.stop()


def test_zdict_off_writes_none(server_factory):
    s = server_factory(args=["--sync", "none", "--zdict", "off"])
    load(s)
    time.sleep(0.3)
    assert zdict_records(s.data) == 0
    assert s.get("/v1/sessions/z/events?offset=%d&limit=10" % FIRST).status == 200
