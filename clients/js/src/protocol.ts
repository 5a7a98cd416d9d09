// TaskBridge v1 wire types (the protocol of taskbridge-fastapi,
// https://github.com/nikkiw/task-bridge, and of TaskBridge for Fiber).
// test/schema.test.mjs checks every interface here against the protocol's
// JSON Schemas, property by property, required or optional.

/** The eight event types. */
export type EventType =
  | 'TASK_STARTED'
  | 'TASK_PROGRESS'
  | 'TASK_MESSAGE'
  | 'TASK_SUSPENDED'
  | 'TASK_ACTION_ACCEPTED'
  | 'TASK_COMPLETED'
  | 'TASK_FAILED'
  | 'TASK_CANCELLED';

/** The types that end a task. */
export type TerminalEventType = 'TASK_COMPLETED' | 'TASK_FAILED' | 'TASK_CANCELLED';

/** Payload of TASK_STARTED. */
export interface StartedPayload {
  message?: string;
}

/** Payload of TASK_PROGRESS: progress is 0..100. */
export interface ProgressPayload {
  progress: number;
  stage?: string;
  message?: string;
}

/** Payload of TASK_MESSAGE. */
export interface MessagePayload {
  message: string;
  level?: 'info' | 'warning' | 'debug' | (string & {});
}

/** Payload of TASK_SUSPENDED: the task waits for one of allowedActions. */
export interface SuspendedPayload {
  suspendId: string;
  kind: 'USER_ACTION_REQUIRED' | 'EXTERNAL_CONFIRMATION_PENDING' | 'SYSTEM_PAUSED';
  reasonCode: string;
  allowedActions: string[];
  schemaVersion: number;
  expiresAt?: string | null;
  uiHints?: Record<string, unknown>;
  interaction?: Record<string, unknown>;
}

/** Payload of TASK_ACTION_ACCEPTED. */
export interface ActionAcceptedPayload {
  suspendId: string;
  clientActionId: string;
  actionType: string;
  acceptedAt: string;
  message?: string;
}

/** Payload of TASK_COMPLETED. */
export interface CompletedPayload {
  result: unknown;
}

/** Payload of TASK_FAILED. */
export interface FailedPayload {
  code: string;
  message: string;
  retryable: boolean;
}

/** Payload of TASK_CANCELLED. */
export interface CancelledPayload {
  reason: string;
  message?: string;
}

/** Payload type by event type. */
export interface PayloadByType {
  TASK_STARTED: StartedPayload;
  TASK_PROGRESS: ProgressPayload;
  TASK_MESSAGE: MessagePayload;
  TASK_SUSPENDED: SuspendedPayload;
  TASK_ACTION_ACCEPTED: ActionAcceptedPayload;
  TASK_COMPLETED: CompletedPayload;
  TASK_FAILED: FailedPayload;
  TASK_CANCELLED: CancelledPayload;
}

/** The event envelope, for one event type. */
export interface TaskEventOf<T extends EventType> {
  type: T;
  taskId: string;
  /** Strictly increasing within a task; compare with compareEventIds, never as strings. */
  eventId: string;
  /** RFC 3339 timestamp. */
  createdAt: string;
  payload: PayloadByType[T];
}

/** TaskEvent is one event of a task; switch on type to narrow payload. */
export type TaskEvent = { [T in EventType]: TaskEventOf<T> }[EventType];

/** The WebSocket's answer to a subscribe frame. retentionGap is an extension of TaskBridge for Fiber. */
export interface SubscriptionConfirmed {
  type: 'SUBSCRIPTION_CONFIRMED';
  taskId: string;
  replayStartedAfterEventId: string | null;
  live: boolean;
  retentionGap?: boolean;
}

/** The WebSocket's idle frame. */
export interface WebSocketHeartbeat {
  type: 'HEARTBEAT';
  taskId: string;
  live: boolean;
}

/** The SSE idle data line, in the event envelope's shape (never with an id: line). */
export interface SSEHeartbeat {
  type: 'HEARTBEAT';
  taskId: string;
  /** "hb-" and random hex: no event id, never a cursor. */
  eventId: string;
  createdAt: string;
  payload: { live: boolean };
}

/** The first and only client frame on a WebSocket. */
export interface SubscribeRequest {
  action: 'subscribe';
  taskId: string;
  lastEventId?: string | null;
}

/** Body of POST /api/v1/tasks (JSON). */
export interface TaskCreateRequest {
  clientRequestId: string;
  taskType: string;
  input?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
}

/** Answer of a create: 201 new, 200 deduplicated. */
export interface TaskCreatedResponse {
  taskId: string;
  status: 'ACCEPTED' | 'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELLED';
  clientRequestId: string;
  deduplicated: boolean;
}

/** Answer of GET /api/v1/tasks/:taskId/events. */
export interface PollEventsResponse {
  taskId: string;
  events: TaskEvent[];
  nextAfterEventId: string | null;
  hasMore: boolean;
  retentionGap?: boolean;
}

/** Body of POST /api/v1/tasks/:taskId/cancel (optional). */
export interface CancelTaskRequest {
  reason?: string;
}

/** Answer of a cancel (202). */
export interface CancelTaskResponse {
  taskId: string;
  status: 'CANCELLATION_REQUESTED' | 'ALREADY_TERMINAL';
}

/** Body of POST /api/v1/tasks/:taskId/actions. */
export interface TaskClientAction {
  clientActionId: string;
  suspendId: string;
  actionType: string;
  payload?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
}

/** Answer of an action: 202, or 200 DEDUPLICATED. */
export interface TaskClientActionResponse {
  taskId: string;
  suspendId: string;
  clientActionId: string;
  status: 'ACCEPTED' | 'DEDUPLICATED' | 'REJECTED_ALREADY_RESOLVED' | 'REJECTED_EXPIRED';
}

/** Answer of the stream-ticket route (TaskBridge for Fiber, opt-in). */
export interface StreamTicketResponse {
  ticket: string;
  taskId: string;
  expiresAt: string;
}

/** The error envelope of every failed request. */
export interface ErrorResponse {
  code: string;
  message: string;
  details: Record<string, unknown>;
  timestamp: string;
}

/** The default paths; ":taskId" is replaced by the escaped task id. */
export interface Routes {
  createTask: string;
  pollEvents: string;
  streamEvents: string;
  cancelTask: string;
  submitAction: string;
  webSocket: string;
  streamTicket: string;
}

export const DEFAULT_ROUTES: Readonly<Routes> = Object.freeze({
  createTask: '/api/v1/tasks',
  pollEvents: '/api/v1/tasks/:taskId/events',
  streamEvents: '/api/v1/tasks/:taskId/events/stream',
  cancelTask: '/api/v1/tasks/:taskId/cancel',
  submitAction: '/api/v1/tasks/:taskId/actions',
  webSocket: '/api/v1/tasks/ws',
  streamTicket: '/api/v1/tasks/:taskId/stream-ticket',
});

const TERMINAL: ReadonlySet<string> = new Set(['TASK_COMPLETED', 'TASK_FAILED', 'TASK_CANCELLED']);
const EVENT_TYPES: ReadonlySet<string> = new Set([
  'TASK_STARTED', 'TASK_PROGRESS', 'TASK_MESSAGE', 'TASK_SUSPENDED',
  'TASK_ACTION_ACCEPTED', 'TASK_COMPLETED', 'TASK_FAILED', 'TASK_CANCELLED',
]);

/** isTerminal reports whether an event ends its task. */
export function isTerminal(ev: { type: string }): ev is { type: TerminalEventType } {
  return TERMINAL.has(ev.type);
}

/** isTaskEvent reports whether a decoded frame is an event envelope of a known type. */
export function isTaskEvent(v: unknown): v is TaskEvent {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return typeof o.type === 'string' && EVENT_TYPES.has(o.type) && typeof o.taskId === 'string' &&
    typeof o.eventId === 'string' && parseEventId(o.eventId) !== null && typeof o.createdAt === 'string' &&
    typeof o.payload === 'object' && o.payload !== null;
}

/** parseEventId reads an "ms-seq" (or "ms") event id; null for any other shape. */
export function parseEventId(id: string): [bigint, bigint] | null {
  const m = /^(\d{1,20})(?:-(\d{1,20}))?$/.exec(id);
  if (!m) return null;
  return [BigInt(m[1] as string), BigInt(m[2] ?? '0')];
}

/**
 * compareEventIds orders two event ids the way the stores do: numerically,
 * millisecond part first, never as strings ("10-0" is after "9-0"). It
 * throws on an id of another shape.
 */
export function compareEventIds(a: string, b: string): -1 | 0 | 1 {
  const x = parseEventId(a);
  const y = parseEventId(b);
  if (!x || !y) throw new TypeError(`taskbridge: malformed event id ${JSON.stringify(x ? b : a)}`);
  if (x[0] !== y[0]) return x[0] < y[0] ? -1 : 1;
  if (x[1] !== y[1]) return x[1] < y[1] ? -1 : 1;
  return 0;
}
