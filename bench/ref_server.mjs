// ref_server.mjs -- the reference Durable Streams server (@durable-streams/server),
// file-backed, for bench/bench_streams.sh.   node ref_server.mjs PORT DATA_DIR
import { DurableStreamTestServer } from "@durable-streams/server";
const [port, dataDir] = process.argv.slice(2);
const s = new DurableStreamTestServer({ port: +port, host: "127.0.0.1", dataDir });
console.log(await s.start());
process.on("SIGTERM", async () => { await s.stop(); process.exit(0); });
