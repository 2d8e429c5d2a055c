"""Helpers for black-box tests of the reel command line (no server needed)."""
import json
import os
import subprocess

REEL = os.environ.get("REEL_BIN", os.path.join(os.path.dirname(__file__), "../../build/reel"))


class Reel:
    def __init__(self, data):
        self.data = data

    def run(self, *args, input=None, check=True):
        p = subprocess.run([REEL, *args, "--data", self.data], input=input,
                           capture_output=True, timeout=120)
        if check and p.returncode != 0:
            raise AssertionError(f"reel {' '.join(args)} exited {p.returncode}: "
                                 f"{p.stderr.decode(errors='replace')}")
        return p

    def ingest(self, session, events):
        text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events)
        return self.run("ingest", "--session", session, "--quiet", input=text.encode())

    def tail(self, session=None):
        args = ["tail"] + (["--session", session] if session else [])
        out = self.run(*args).stdout.decode()
        return [json.loads(line) for line in out.split("\n") if line]

