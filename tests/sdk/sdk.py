"""The pinned sandbox-agent SDK for the tests that compare reel with it.

ensure_sdk() installs tests/sdk/package.json's pinned packages with `npm ci` (as
tests/conformance/run.sh installs the conformance suite) when they are missing, and returns
the folder. A machine without node/npm, or where npm ci cannot install (offline), skips
the calling test, saying why.
"""
import os
import shutil
import subprocess

import pytest

SDK_DIR = os.path.dirname(os.path.abspath(__file__))


def ensure_sdk():
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the SDK comparison")
    if not os.path.isdir(os.path.join(SDK_DIR, "node_modules", "sandbox-agent")):
        p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--omit=optional",
                            "--ignore-scripts"], cwd=SDK_DIR, capture_output=True, timeout=300)
        if p.returncode != 0:
            pytest.skip("npm ci could not install sandbox-agent (offline?): %s"
                        % p.stderr.decode(errors="replace")[-300:])
    return SDK_DIR
