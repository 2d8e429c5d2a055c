// client.mjs -- reel-client as the sandbox-agent adapter tests use it: ReelClient and the
// adapter, both from clients/typescript/dist (built by clients/typescript/run-tests.sh).
import path from "node:path";
import { ROOT } from "./harness.mjs";

const DIST = path.join(ROOT, "clients/typescript/dist");
export const reelClientMod = await import(path.join(DIST, "index.js"));
export const adapterMod = await import(path.join(DIST, "adapters/sandbox-agent.js"));

export async function makeClient(baseUrl, opts = {}) {
    return new reelClientMod.ReelClient({ baseUrl, ...opts });
}

// a driver with its own ReelClient (coalescing on, as the adapter makes it by default)
export async function makeDriver(baseUrl, opts = {}) {
    return new adapterMod.ReelSessionPersistDriver({ baseUrl, ...opts });
}
