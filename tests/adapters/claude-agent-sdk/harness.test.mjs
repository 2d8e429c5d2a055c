// The harness alone (no reel): the real SDK and its bundled Claude Code binary run a query
// against the fake Anthropic API on 127.0.0.1, execute the scripted Read tool use, and
// mirror the transcript into the SDK's own InMemorySessionStore. If this fails, the
// reel adapter tests cannot mean anything.
import { test } from "node:test";
import assert from "node:assert/strict";
import { sdk, skip } from "./install.mjs";
import { startFakeAnthropic, transcriptText } from "./fake_anthropic.mjs";
import { makeSandbox, queryOptions, collect } from "./sdk_env.mjs";

test("query() runs offline against the fake API, with a tool use, and mirrors to a SessionStore",
  { timeout: 120_000, skip }, async () => {
    const { query, InMemorySessionStore } = sdk;
    const api = await startFakeAnthropic();
    const sb = makeSandbox(api.url);
    try {
      const store = new InMemorySessionStore();
      const msgs = await collect(query({ prompt: `READ ${sb.notes}`,
        options: queryOptions(sb, { sessionStore: store }) }));
      const result = msgs.find((m) => m.type === "result");
      assert.equal(result?.subtype, "success", JSON.stringify(result));
      assert.match(result.result, /^DONE 2: .*PELICAN/s);
      const sessionId = result.session_id;

      const model = api.modelRequests();
      assert.equal(model.length, 2, "one tool-use turn, one final turn");
      assert.equal(model[0].body.stream, true);
      // the second request carries the tool use and the CLI's real tool result
      const second = transcriptText(model[1].body);
      assert.match(second, /tool_use Read .*notes\.txt/);
      assert.match(second, /tool_result .*PELICAN/);

      // the transcript was written locally and mirrored to the store
      assert.equal(sb.transcripts().length, 1);
      assert.equal(store.size, 1);
      // the default projectKey is the sanitized cwd, as the CLI names its projects folder
      const projectKey = sb.workspace.replace(/[^A-Za-z0-9]/g, "-");
      const listed = await store.listSessions(projectKey);
      assert.deepEqual(listed.map((s) => s.sessionId), [sessionId]);
      const entries = store.getEntries({ projectKey, sessionId });
      assert.ok(entries.length >= 4, `mirrored ${entries.length} entries`);
      assert.ok(entries.some((e) => e.type === "assistant"));
      assert.ok(entries.some((e) => e.type === "user"));
    } finally {
      await api.close();
      sb.cleanup();
    }
  });
