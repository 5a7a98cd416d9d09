// TaskBridge v1 client for browsers and Node 20+. See README.md.
export { TaskBridgeClient, newId, linkSignals, type LinkedSignal, type ClientOptions, type TokenSource, type Attachment, type CreateRequest, type PollOptions, type ActionRequest } from './client.js';
export { Watch, type Transport, type WatchOptions, type WatchStatus, type Delivery } from './watch.js';
export { TaskBridgeError, statusOfCode } from './errors.js';
export { SSEParser, type SSEItem } from './sse.js';
export * from './protocol.js';
