// reel-client: the TypeScript client of reel's HTTP API (docs/HTTP.md, docs/CLIENTS.md).
export {
  ReelClient,
  ReelError,
  newEventId,
  encodeSessionId,
} from "./client.js";
export type {
  Json,
  NewEvent,
  ReelEvent,
  AppendResult,
  SessionRecord,
  SessionStatus,
  ClientOptions,
  CoalesceOptions,
  EventPage,
  SessionPage,
  ListOptions,
  SessionFields,
  PutOptions,
  RestoreOptions,
  RestoreResult,
  TranscriptOptions,
  ExportOptions,
  SubscribeOptions,
  Problem,
} from "./client.js";
export { ClusterReader, ClusterMap, parseCursor, formatCursor } from "./cluster.js";
export type { ClusterEvent, ClusterMapDoc, ClusterReaderOptions, VectorCursor } from "./cluster.js";
