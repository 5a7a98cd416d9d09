import { TaskBridgeError, errorFromResponse } from './errors.js';
import {
  DEFAULT_ROUTES,
  type CancelTaskResponse,
  type PollEventsResponse,
  type Routes,
  type StreamTicketResponse,
  type SuspendedPayload,
  type TaskClientActionResponse,
  type TaskCreatedResponse,
} from './protocol.js';
import { Watch, type Transport, type WatchOptions } from './watch.js';

/** A bearer token, or a function that returns the current one (called per request and per stream connect). */
export type TokenSource = string | ((signal?: AbortSignal) => string | Promise<string>);

/** Options of a TaskBridgeClient. Every field is optional. */
export interface ClientOptions {
  /** Server base URL ("https://api.example.com" or with a path prefix). Default: the page's origin (required in Node). */
  baseUrl?: string;
  /** Bearer token sent as "Authorization: Bearer <token>" on fetch requests (and on the ticket route). */
  token?: TokenSource;
  /** Extra headers on every fetch request (e.g. an API key). */
  headers?: Record<string, string>;
  /**
   * Authenticate WebSocket and EventSource streams with a stream ticket
   * (POST …/:taskId/stream-ticket with the token, then ?ticket=…): short-lived,
   * single-use, task-scoped, so no long-lived token goes into a URL. The server
   * must have tickets on. Default: false.
   */
  streamTickets?: boolean;
  /**
   * Put the token in stream URLs as access_token (servers that accept it). Tokens
   * in URLs end up in logs: prefer streamTickets. Default: false.
   */
  tokenInQuery?: boolean;
  /** The server's paths; ":taskId" is replaced. Default: DEFAULT_ROUTES. */
  routes?: Partial<Routes>;
  /** Watch's transport chain, in order. Default: ['ws', 'sse', 'poll']. */
  transports?: Transport[];
  /** Silence (no event, heartbeat or ping) after which a stream is presumed dead. Default: 45000. */
  heartbeatTimeoutMs?: number;
  /** waitTimeoutMs of Watch's long-polls (at most 60000). Default: 25000. */
  pollWaitMs?: number;
  /** Bound of each request attempt (beyond a long-poll's wait). Default: 30000. */
  requestTimeoutMs?: number;
  /** Reconnect and retry backoff: attempt n waits between half and all of min(max, min·2ⁿ). Default: 200..10000. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Attempts of create, poll, cancel and act on network errors and 5xx (safe: idempotency keys). Default: 3. */
  retries?: number;
  /** fetch to use. Default: globalThis.fetch. */
  fetch?: typeof fetch;
  /** WebSocket constructor; null leaves WebSockets out. Default: globalThis.WebSocket (browsers, Node 22+). */
  WebSocket?: typeof WebSocket | null;
  /**
   * EventSource constructor; null reads SSE with fetch instead (headers allowed).
   * Default: globalThis.EventSource when streams need no header (tickets, tokenInQuery,
   * cookies), else fetch.
   */
  EventSource?: typeof EventSource | null;
  /** fetch credentials mode (cookies). Default: 'same-origin'. */
  credentials?: RequestCredentials;
}

/** A file sent with a create request (multipart/form-data). */
export interface Attachment {
  filename: string;
  contentType?: string;
  data: Blob | Uint8Array | string;
}

/** A task to create. */
export interface CreateRequest {
  /** Idempotency key: the same key and payload return the existing task. Default: a random UUID, reused by retries. */
  clientRequestId?: string;
  taskType: string;
  input?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
  /** When given, the request is multipart/form-data. */
  attachments?: Attachment[];
  signal?: AbortSignal;
}

/** One long-poll. */
export interface PollOptions {
  /** Cursor: events strictly after it. */
  after?: string | null;
  /** How long the server may wait for the first event (0..60000). Default: 0. */
  waitMs?: number;
  /** Page size (1..500). Default: the server's (100). */
  maxEvents?: number;
  signal?: AbortSignal;
}

/** An answer to a suspension. */
export interface ActionRequest {
  suspendId: string;
  actionType: string;
  /** Idempotency key; a repeat answers DEDUPLICATED. Default: a random UUID, reused by retries. */
  clientActionId?: string;
  payload?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
  signal?: AbortSignal;
}

interface RequestSpec {
  method: string;
  url: string;
  body?: () => BodyInit | undefined;
  contentType?: string;
  ok: number[];
  extraMs?: number;
  signal?: AbortSignal | undefined;
  tries?: number;
}

const TASK_ID = ':taskId';

/** newId returns a random UUID (v4). */
export function newId(): string {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === 'function') {
    try { return c.randomUUID(); } catch { /* insecure context */ }
  }
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** sleep waits ms or until signal aborts (then it rejects with the reason). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) { reject(signal.reason); return; }
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(); }, ms);
    const onAbort = () => { clearTimeout(t); reject(signal?.reason); };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A signal that aborts when any of its sources does; dispose() detaches it from them. */
export interface LinkedSignal {
  signal: AbortSignal;
  dispose(): void;
}

/**
 * linkSignals returns a signal that aborts with the first of the given ones
 * (undefined ones are left out). Unlike AbortSignal.any, it keeps its
 * sources' listeners until dispose(), so it cannot be collected while a
 * fetch waits on it (Node 20 drops such composite signals).
 */
export function linkSignals(...signals: (AbortSignal | undefined)[]): LinkedSignal {
  const ac = new AbortController();
  const undo: (() => void)[] = [];
  for (const s of signals) {
    if (!s) continue;
    if (s.aborted) {
      ac.abort(s.reason);
      break;
    }
    const on = () => ac.abort(s.reason);
    s.addEventListener('abort', on, { once: true });
    undo.push(() => s.removeEventListener('abort', on));
  }
  return { signal: ac.signal, dispose: () => { for (const u of undo) u(); } };
}

/**
 * TaskBridgeClient talks to one TaskBridge v1 server (TaskBridge for Fiber, or
 * taskbridge-fastapi): create, poll, cancel, act, and watch a task's events.
 */
export class TaskBridgeClient {
  /** The resolved options (defaults applied). */
  readonly options: Readonly<Required<Pick<ClientOptions,
    'heartbeatTimeoutMs' | 'pollWaitMs' | 'requestTimeoutMs' | 'backoffMinMs' | 'backoffMaxMs' | 'retries' |
    'streamTickets' | 'tokenInQuery'>>> & ClientOptions;
  readonly routes: Readonly<Routes>;
  private readonly base: string;
  private readonly doFetch: typeof fetch;

  constructor(options: ClientOptions = {}) {
    const loc = (globalThis as { location?: { origin?: string } }).location;
    const base = options.baseUrl ?? (loc?.origin && loc.origin !== 'null' ? loc.origin : undefined);
    if (!base) throw new TypeError('taskbridge: baseUrl is required outside a browser page');
    const u = new URL(base);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`taskbridge: baseUrl ${base}: want http(s)`);
    this.base = u.origin + u.pathname.replace(/\/+$/, '');
    this.options = {
      heartbeatTimeoutMs: 45_000, pollWaitMs: 25_000, requestTimeoutMs: 30_000,
      backoffMinMs: 200, backoffMaxMs: 10_000, retries: 3, streamTickets: false, tokenInQuery: false,
      ...options,
    };
    const o = this.options;
    if (!(o.pollWaitMs > 0 && o.pollWaitMs <= 60_000)) throw new RangeError('taskbridge: pollWaitMs must be in (0, 60000]');
    if (!(o.heartbeatTimeoutMs > 0)) throw new RangeError('taskbridge: heartbeatTimeoutMs must be positive');
    if (!(o.backoffMinMs > 0 && o.backoffMaxMs >= o.backoffMinMs)) throw new RangeError('taskbridge: want 0 < backoffMinMs <= backoffMaxMs');
    if (!(o.retries >= 1)) throw new RangeError('taskbridge: retries must be at least 1');
    this.routes = Object.freeze({ ...DEFAULT_ROUTES, ...options.routes });
    const f = options.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') throw new TypeError('taskbridge: no fetch');
    this.doFetch = (input, init) => f(input, init);
  }

  /** url returns the absolute URL of a route for taskId. */
  url(route: keyof Routes, taskId = '', query?: Record<string, string | undefined>): string {
    let s = this.base + this.routes[route].split(TASK_ID).join(encodeURIComponent(taskId));
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) q.set(k, v);
    const qs = q.toString();
    if (qs) s += `?${qs}`;
    return s;
  }

  /** token returns the current bearer token ('' when none). */
  async token(signal?: AbortSignal): Promise<string> {
    const t = this.options.token;
    if (t === undefined) return '';
    return typeof t === 'function' ? await t(signal) : t;
  }

  /** headers returns the headers of a fetch request: the extra ones and the bearer token. */
  async headers(signal?: AbortSignal): Promise<Record<string, string>> {
    const h: Record<string, string> = { ...this.options.headers };
    const tok = await this.token(signal);
    if (tok) h.Authorization = `Bearer ${tok}`;
    return h;
  }

  /** fetch sends one request with the client's headers and credentials. */
  async fetch(url: string, init: RequestInit & { headers?: Record<string, string> } = {}): Promise<Response> {
    const headers = { ...(await this.headers(init.signal ?? undefined)), ...init.headers };
    return this.doFetch(url, { credentials: this.options.credentials ?? 'same-origin', ...init, headers });
  }

  /** backoff returns the jittered wait before attempt n (0-based). */
  backoff(n: number): number {
    const { backoffMinMs: lo, backoffMaxMs: hi } = this.options;
    const d = Math.min(hi, lo * 2 ** Math.min(n, 30));
    return d / 2 + Math.random() * (d / 2);
  }

  /** request runs a unary call with retries on network errors and 5xx. */
  private async request<T>(spec: RequestSpec): Promise<{ status: number; body: T }> {
    const tries = spec.tries ?? this.options.retries;
    let last: unknown;
    for (let attempt = 0; attempt < tries; attempt++) {
      if (attempt > 0) await sleep(this.backoff(attempt - 1), spec.signal);
      const timeout = new AbortController();
      const timer = setTimeout(() => timeout.abort(new Error('taskbridge: request timed out')), this.options.requestTimeoutMs + (spec.extraMs ?? 0));
      const linked = linkSignals(spec.signal, timeout.signal);
      try {
        let res: Response;
        try {
          const headers: Record<string, string> = { Accept: 'application/json' };
          if (spec.contentType) headers['Content-Type'] = spec.contentType;
          res = await this.fetch(spec.url, { method: spec.method, headers, body: spec.body?.(), signal: linked.signal });
          if (spec.ok.includes(res.status)) {
            const text = await res.text();
            return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
          }
        } catch (err) {
          if (spec.signal?.aborted) throw spec.signal.reason;
          last = err;
          continue;
        }
        const err = await errorFromResponse(res);
        if (res.status < 500) throw err;
        last = err;
      } finally {
        clearTimeout(timer);
        linked.dispose();
      }
    }
    throw last;
  }

  /**
   * create creates a task (JSON, or multipart/form-data with attachments).
   * Failures are retried with the same clientRequestId, so a retry never makes
   * a second task.
   */
  async create(req: CreateRequest): Promise<TaskCreatedResponse> {
    if (!req.taskType) throw new TypeError('taskbridge: create: taskType is required');
    const clientRequestId = req.clientRequestId || newId();
    const input = req.input ?? {};
    let body: () => BodyInit;
    let contentType: string | undefined;
    if (req.attachments?.length) {
      body = () => {
        const form = new FormData();
        form.set('clientRequestId', clientRequestId);
        form.set('taskType', req.taskType);
        form.set('input', JSON.stringify(input));
        if (req.metadata) form.set('metadata', JSON.stringify(req.metadata));
        for (const a of req.attachments ?? []) {
          const type = a.contentType || 'application/octet-stream';
          const blob = a.data instanceof Blob ? a.data : new Blob([a.data as BlobPart], { type });
          form.append('attachments', blob.type === type ? blob : new Blob([blob], { type }), a.filename);
        }
        return form;
      };
    } else {
      const json = JSON.stringify({ clientRequestId, taskType: req.taskType, input, ...(req.metadata ? { metadata: req.metadata } : {}) });
      body = () => json;
      contentType = 'application/json';
    }
    const { body: out } = await this.request<TaskCreatedResponse>({
      method: 'POST', url: this.url('createTask'), body, contentType, ok: [201, 200], signal: req.signal,
    });
    return out;
  }

  /** poll reads the task's events after the cursor, waiting up to waitMs for the first. */
  async poll(taskId: string, opts: PollOptions = {}, tries?: number): Promise<PollEventsResponse> {
    const waitMs = opts.waitMs ?? 0;
    if (waitMs < 0 || waitMs > 60_000) throw new RangeError('taskbridge: poll: waitMs must be within 0..60000');
    const url = this.url('pollEvents', taskId, {
      afterEventId: opts.after || undefined,
      waitTimeoutMs: waitMs ? String(Math.round(waitMs)) : undefined,
      maxEvents: opts.maxEvents ? String(opts.maxEvents) : undefined,
    });
    const { body } = await this.request<PollEventsResponse>({ method: 'GET', url, ok: [200], extraMs: waitMs, signal: opts.signal, tries });
    return body;
  }

  /** cancel asks the server to cancel the task (CANCELLATION_REQUESTED, or ALREADY_TERMINAL). */
  async cancel(taskId: string, reason?: string, signal?: AbortSignal): Promise<CancelTaskResponse> {
    const json = reason ? JSON.stringify({ reason }) : undefined;
    const { body } = await this.request<CancelTaskResponse>({
      method: 'POST', url: this.url('cancelTask', taskId), body: () => json,
      contentType: json ? 'application/json' : undefined, ok: [202, 200], signal,
    });
    return body;
  }

  /** act submits an action on the task's suspension; retries reuse clientActionId. */
  async act(taskId: string, a: ActionRequest): Promise<TaskClientActionResponse> {
    if (!a.suspendId || !a.actionType) throw new TypeError('taskbridge: act: suspendId and actionType are required');
    const json = JSON.stringify({
      clientActionId: a.clientActionId || newId(), suspendId: a.suspendId, actionType: a.actionType,
      ...(a.payload ? { payload: a.payload } : {}), ...(a.metadata ? { metadata: a.metadata } : {}),
    });
    const { body } = await this.request<TaskClientActionResponse>({
      method: 'POST', url: this.url('submitAction', taskId), body: () => json, contentType: 'application/json',
      ok: [202, 200], signal: a.signal,
    });
    return body;
  }

  /**
   * openSuspension reads the task's retained events and returns its open
   * suspension (the last TASK_SUSPENDED not followed by TASK_ACTION_ACCEPTED on
   * a task that has not ended), or null.
   */
  async openSuspension(taskId: string, signal?: AbortSignal): Promise<SuspendedPayload | null> {
    let open: SuspendedPayload | null = null;
    let after: string | null = null;
    for (;;) {
      const page = await this.poll(taskId, { after, maxEvents: 500, signal });
      for (const ev of page.events) {
        if (ev.type === 'TASK_SUSPENDED') open = ev.payload;
        else if (ev.type === 'TASK_ACTION_ACCEPTED') open = null;
        else if (ev.type === 'TASK_COMPLETED' || ev.type === 'TASK_FAILED' || ev.type === 'TASK_CANCELLED') return null;
      }
      if (!page.hasMore || !page.nextAfterEventId || page.events.length === 0) return open;
      after = page.nextAfterEventId;
    }
  }

  /**
   * streamTicket asks the server for a stream ticket of the task: valid for
   * one SSE or WebSocket connection to that task, for a minute (the server's
   * StreamTickets). Watch calls it before each stream connect when
   * streamTickets is on.
   */
  async streamTicket(taskId: string, signal?: AbortSignal): Promise<StreamTicketResponse> {
    const { body } = await this.request<StreamTicketResponse>({
      method: 'POST', url: this.url('streamTicket', taskId), ok: [201], signal, tries: 1,
    });
    return body;
  }

  /**
   * watch follows the task's events after opts.from over the transport chain
   * (WebSocket, then SSE, then long-poll), resuming after the last event it
   * yielded on every reconnect and never yielding one twice. Iterate it:
   *
   *   for await (const ev of client.watch(taskId)) { ... }
   *
   * The iteration ends after the terminal event (or when the server says the
   * task ended at or before the cursor), and throws a TaskBridgeError on a
   * refusal that retrying cannot fix (401, 403, 404, 429, ...), or the
   * signal's reason when it aborts.
   */
  watch(taskId: string, opts: WatchOptions = {}): Watch {
    if (!taskId) throw new TypeError('taskbridge: watch: empty task id');
    return new Watch(this, taskId, opts);
  }
}

export { TaskBridgeError };
