"""The real Amp CLI (tests/agents/amp: @ampcode/cli, pinned) cannot run offline against a
local model endpoint, and this test pins down why (docs/AGENTS.md, "amp (real CLI)").

Amp is a client of the Amp service, not of a model API: AMP_URL (default
https://ampcode.com/) is the only endpoint it takes; it first calls the service's private
RPC (POST /api/internal?getUserInfo, loadPlugins, loadSkills), then creates the thread as
a server-side actor (POST /api/thread-actors, answered with a threadId and a wsToken for
a WebSocket), and the agent loop and the model calls run behind that service. There is no
setting that points it at an Anthropic or OpenAI API. Pointed at the fake Anthropic API it
stops at the first RPC, without a line of stream JSON and without a model request.

When a future version can talk to a local model API, this test fails: then test Amp like
Claude (test_claude.py). Amp's stream-json format is covered by golden cases
(tests/cases/agents/amp/).
"""
from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import pytest

import agentlib
from agentlib import Fake, cleanup, sandbox

HERE = Path(__file__).resolve().parent
ARCH = {"x86_64": "x64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
BIN = HERE / "amp" / "node_modules" / "@ampcode" / f"cli-linux-{ARCH}" / "amp"

pytestmark = pytest.mark.skipif(not BIN.exists(), reason="Amp not installed: tests/agents/run.sh runs npm ci")


def test_amp_needs_the_amp_service_not_a_model_api(tmp_path):
    sb = sandbox(tmp_path)
    try:
        version = agentlib.version_of(str(BIN), env=sb.env())
        with Fake("anthropic.mjs") as api:
            env = sb.env(AMP_URL=api.url, AMP_API_KEY="dummy", ANTHROPIC_BASE_URL=api.url,
                         ANTHROPIC_API_KEY="dummy")
            p = subprocess.run([str(BIN), "-x", "SCENARIO hello", "--stream-json"], cwd=sb.work,
                               env=env, capture_output=True, text=True, timeout=60)
            reqs = api.requests()
        print(f"amp {version}: exit {p.returncode}, stderr {p.stderr.strip()[:120]!r}, "
              f"requests {[(r['method'], r['path']) for r in reqs]}")
        assert p.returncode != 0
        assert p.stdout.strip() == "", "no stream JSON without the Amp service"
        assert reqs and reqs[0]["path"] == "/api/internal", "the Amp service's RPC comes first"
        assert not [r for r in reqs if r["path"].startswith("/v1/")], "no model API request"
    finally:
        cleanup(sb)
