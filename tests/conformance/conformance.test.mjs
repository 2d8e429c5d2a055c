import { runConformanceTests } from "@durable-streams/server-conformance-tests";
// subscriptions: the suite's "Reserved subscription APIs" group (api/ds/subs.c).
runConformanceTests({ baseUrl: process.env.DS_URL, subscriptions: true });
