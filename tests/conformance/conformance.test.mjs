import { runConformanceTests } from "@durable-streams/server-conformance-tests";
// subscriptions: the suite's "Reserved subscription APIs" group (api/ds/subs*.c); off with
// DS_SUBSCRIPTIONS=0 (several cells behind nginx: subscriptions are per cell).
runConformanceTests({
  baseUrl: process.env.DS_URL,
  subscriptions: process.env.DS_SUBSCRIPTIONS !== "0",
});
