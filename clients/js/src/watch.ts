import type { TaskBridgeClient } from './client.js';
import { linkSignals, sleep } from './client.js';
import { TaskBridgeError, errorFromResponse, statusOfCode } from './errors.js';
import { compareEventIds, isTaskEvent, isTerminal, type TaskEvent } from './protocol.js';
import { SSEParser } from './sse.js';

/** One way of receiving a task's events. */
export type Transport = 'ws' | 'sse' | 'poll';

/** What a Watch reports about its connections (WatchOptions.onStatus). */
export type WatchStatus =
  | { type: 'connecting'; transport: Transport; connection: number; after: string | null }
  | { type: 'open'; transport: Transport; connection: number; after: string | null; retentionGap: boolean }
  | { type: 'heartbeat'; transport: Transport; connection: number }
  | { type: 'duplicate'; transport: Transport; connection: number; eventId: string }
  | { type: 'closed'; transport: Transport; connection: number; reason: string; dropped: boolean; retryInMs: number }
  | { type: 'fallback'; from: Transport; to: Transport; reason: string }
  | { type: 'end'; reason: 'terminal' | 'ended' | 'error' | 'aborted' | 'closed' };

/** Options of one watch. */
export interface WatchOptions {
  /** Cursor: yield only events after it. Default: from the first retained event. */
  from?: string | null;
  /** Ends the watch; the iteration then throws the signal's reason. */
  signal?: AbortSignal;
  /** The transport chain of this watch. Default: the client's. */
  transports?: Transport[];
  /** Called on every connection change, heartbeat and dropped repeat. */
  onStatus?: (s: WatchStatus) => void;
}

/** Which connection delivered an event. */
export interface Delivery {
  transport: Transport;
  connection: number;
}

interface Attempt {
  delivered: boolean;
  unavailable?: boolean;
  dropped?: boolean;
  error?: unknown;
}

const FALLBACK_AFTER = 3;
const NAMES: Record<Transport, string> = { ws: 'WebSocket', sse: 'SSE', poll: 'long-poll' };

/**
 * Watch is one following of a task's events: an async iterable of
 * TaskEvent. It owns its connections; breaking out of the iteration, close()
 * or the signal ends them.
 */
export class Watch implements AsyncIterable<TaskEvent> {
  readonly taskId: string;
  /** The last event yielded (or opts.from): where the next connection resumes. */
  cursor: string | null;
  /** The transport of the current connection. */
  transport: Transport | null = null;
  /** Connections opened so far (each numbered from 1). */
  connections = 0;
  /** Events dropped because they were at or before the cursor. */
  duplicates = 0;

  private readonly client: TaskBridgeClient;
  private readonly opts: WatchOptions;
  private readonly chain: Transport[];
  private readonly queue: TaskEvent[] = [];
  private readonly deliveries = new WeakMap<TaskEvent, Delivery>();
  private readonly stop = new AbortController();
  private wake: (() => void) | null = null;
  private started = false;
  private finished = false;
  private failure: unknown = undefined;
  private ended: 'terminal' | 'ended' | null = null;
  private conn: AbortController | null = null;
  private dropDelay = 0;

  constructor(client: TaskBridgeClient, taskId: string, opts: WatchOptions) {
    this.client = client;
    this.taskId = taskId;
    this.opts = opts;
    this.cursor = opts.from || null;
    this.chain = (opts.transports ?? client.options.transports ?? ['ws', 'sse', 'poll']).filter((t) => this.supports(t));
    // Stopping the watch ends the connection in progress.
    this.stop.signal.addEventListener('abort', () => this.conn?.abort('stopped'), { once: true });
    if (opts.signal) {
      if (opts.signal.aborted) this.stop.abort(opts.signal.reason);
      else opts.signal.addEventListener('abort', () => this.stop.abort(opts.signal?.reason), { once: true });
    }
  }

  /** deliveredBy tells which connection delivered a yielded event. */
  deliveredBy(ev: TaskEvent): Delivery | undefined {
    return this.deliveries.get(ev);
  }

  /**
   * drop closes the current connection as if the network had dropped it; the
   * watch reconnects after reconnectAfterMs and resumes from its cursor.
   */
  drop(reconnectAfterMs = 0): void {
    if (!this.conn || this.finished) return;
    this.dropDelay = reconnectAfterMs;
    this.conn.abort('drop');
  }

  /** close ends the watch; the iteration ends without an error. */
  close(): void {
    if (this.finished) return;
    this.finish(undefined, 'closed');
    this.stop.abort('closed');
  }

  [Symbol.asyncIterator](): AsyncIterator<TaskEvent> {
    if (!this.started) {
      this.started = true;
      void this.run();
    }
    return {
      next: async (): Promise<IteratorResult<TaskEvent>> => {
        for (;;) {
          const ev = this.queue.shift();
          if (ev) return { value: ev, done: false };
          if (this.finished) {
            if (this.failure !== undefined) {
              const err = this.failure;
              this.failure = undefined;
              throw err;
            }
            return { value: undefined, done: true };
          }
          await new Promise<void>((resolve) => { this.wake = resolve; });
        }
      },
      return: async (): Promise<IteratorResult<TaskEvent>> => {
        this.close();
        return { value: undefined, done: true };
      },
    };
  }

  // ---------------------------------------------------------------- state

  private status(s: WatchStatus): void {
    try { this.opts.onStatus?.(s); } catch { /* a status callback must not break the watch */ }
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private finish(error: unknown, reason: 'terminal' | 'ended' | 'error' | 'aborted' | 'closed'): void {
    if (this.finished) return;
    this.finished = true;
    this.failure = error;
    this.conn?.abort('finished');
    this.status({ type: 'end', reason });
    this.notify();
  }

  /** deliver queues ev unless it repeats; false when the connection must end. */
  private deliver(ev: TaskEvent, transport: Transport, connection: number): boolean {
    if (this.finished || this.ended) return false;
    if (ev.taskId !== this.taskId) return true;
    if (this.cursor && compareEventIds(ev.eventId, this.cursor) <= 0) {
      this.duplicates += 1;
      this.status({ type: 'duplicate', transport, connection, eventId: ev.eventId });
      return true;
    }
    this.cursor = ev.eventId;
    this.deliveries.set(ev, { transport, connection });
    this.queue.push(ev);
    this.notify();
    if (isTerminal(ev)) {
      this.ended = 'terminal';
      return false;
    }
    return true;
  }

  private supports(t: Transport): boolean {
    const o = this.client.options;
    const headerOnly = !!o.token && !o.streamTickets && !o.tokenInQuery;
    switch (t) {
      case 'ws': return !!this.wsCtor() && !headerOnly;
      case 'sse': return !!this.esCtor() || typeof ReadableStream === 'function';
      case 'poll': return true;
    }
    return false;
  }

  private wsCtor(): typeof WebSocket | null {
    const o = this.client.options;
    return o.WebSocket === null ? null : o.WebSocket ?? (globalThis.WebSocket as typeof WebSocket | undefined) ?? null;
  }

  /** esCtor is the EventSource to use, or null to read SSE with fetch. */
  private esCtor(): typeof EventSource | null {
    const o = this.client.options;
    if (o.EventSource === null) return null;
    const ctor = o.EventSource ?? (globalThis.EventSource as typeof EventSource | undefined) ?? null;
    if (!ctor) return null;
    const headerOnly = !!o.token && !o.streamTickets && !o.tokenInQuery;
    return headerOnly ? null : ctor;
  }

  // ---------------------------------------------------------------- the loop

  private async run(): Promise<void> {
    const c = this.client;
    if (this.chain.length === 0) {
      this.finish(new TypeError('taskbridge: watch: none of the transports can run here'), 'error');
      return;
    }
    let i = 0;
    let here = 0;
    let fails = 0;
    const proven = new Set<Transport>();
    try {
      for (;;) {
        if (this.stop.signal.aborted) throw this.stop.signal.reason;
        const t = this.chain[i] as Transport;
        const connection = ++this.connections;
        this.transport = t;
        this.conn = new AbortController();
        this.status({ type: 'connecting', transport: t, connection, after: this.cursor });
        let a: Attempt;
        try {
          a = t === 'ws' ? await this.ws(connection) : t === 'sse' ? await this.sse(connection, proven.has(t)) : await this.poll(connection);
        } catch (err) {
          a = { delivered: false, error: err };
        }
        if (this.finished) return;
        if (this.ended) {
          this.finish(undefined, this.ended);
          return;
        }
        if (this.stop.signal.aborted) throw this.stop.signal.reason;
        if (a.error instanceof TaskBridgeError && a.error.fatal) {
          this.finish(a.error, 'error');
          return;
        }
        const reason = describe(a.error);
        if (a.dropped) {
          this.status({ type: 'closed', transport: t, connection, reason: 'dropped', dropped: true, retryInMs: this.dropDelay });
          await sleep(this.dropDelay, this.stop.signal);
          continue;
        }
        if (a.delivered) {
          proven.add(t);
          here = 0;
          fails = 0;
        } else {
          here += 1;
          fails += 1;
        }
        if (this.chain.length > 1 && (a.unavailable || here >= FALLBACK_AFTER)) {
          const next = (i + 1) % this.chain.length;
          const to = this.chain[next] as Transport;
          this.status({ type: 'closed', transport: t, connection, reason, dropped: false, retryInMs: 0 });
          this.status({ type: 'fallback', from: t, to, reason: a.unavailable ? `${NAMES[t]} cannot work here (${reason})` : reason });
          i = next;
          here = 0;
          if (a.unavailable && next !== 0) continue;
        }
        const wait = c.backoff(Math.max(fails - 1, 0));
        this.status({ type: 'closed', transport: t, connection, reason, dropped: false, retryInMs: Math.round(wait) });
        await sleep(wait, this.stop.signal);
      }
    } catch (err) {
      if (this.finished) return;
      this.finish(err, this.opts.signal?.aborted ? 'aborted' : 'error');
    }
  }

  /** heartbeat returns a timer that calls onDead after the heartbeat timeout; reset() restarts it. */
  private heartbeat(onDead: () => void): { reset(): void; clear(): void } {
    const ms = this.client.options.heartbeatTimeoutMs;
    let t: ReturnType<typeof setTimeout> | undefined;
    const reset = () => { clearTimeout(t); t = setTimeout(onDead, ms); };
    reset();
    return { reset, clear: () => clearTimeout(t) };
  }

  /** streamQuery returns the credentials a stream URL carries (ticket or token). */
  private async streamQuery(signal: AbortSignal): Promise<Record<string, string>> {
    const o = this.client.options;
    if (o.streamTickets) return { ticket: (await this.client.streamTicket(this.taskId, signal)).ticket };
    if (o.tokenInQuery) {
      const tok = await this.client.token(signal);
      return tok ? { access_token: tok } : {};
    }
    return {};
  }

  /**
   * probe finds out why a stream failed before it was established, since
   * browsers hide the status of a refused WebSocket or EventSource: a 4xx
   * from the long-poll route is final; a 204 from the SSE route means the
   * task ended at or before the cursor.
   */
  private async probe(): Promise<{ fatal?: TaskBridgeError; ended?: boolean }> {
    const c = this.client;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), c.options.requestTimeoutMs);
    const linked = linkSignals(this.stop.signal, timeout.signal);
    try {
      const res = await c.fetch(c.url('pollEvents', this.taskId, { afterEventId: this.cursor || undefined, waitTimeoutMs: '0', maxEvents: '1' }), { signal: linked.signal });
      if (!res.ok) {
        const err = await errorFromResponse(res);
        return err.fatal ? { fatal: err } : {};
      }
      const page = await res.json() as { events?: unknown[] };
      if (page.events && page.events.length > 0) return {};
      return { ended: await this.endedAtCursor() };
    } catch {
      return {};
    } finally {
      clearTimeout(timer);
      linked.dispose();
    }
  }

  /** endedAtCursor asks the SSE route (with fetch) for its 204. */
  private async endedAtCursor(): Promise<boolean> {
    return (await this.probeStream()).ended === true;
  }

  /**
   * probeStream asks the SSE route with fetch (headers, status visible) what
   * an EventSource could not tell: 204 (the task ended at or before the
   * cursor) or a refusal retrying cannot fix (401, 404, 429, ...). A stream
   * that opens is closed at once.
   */
  private async probeStream(): Promise<{ fatal?: TaskBridgeError; ended?: boolean }> {
    const c = this.client;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), Math.min(c.options.requestTimeoutMs, 10_000));
    const linked = linkSignals(this.stop.signal, ac.signal);
    try {
      const headers: Record<string, string> = { Accept: 'text/event-stream' };
      if (this.cursor) headers['Last-Event-ID'] = this.cursor;
      const res = await c.fetch(c.url('streamEvents', this.taskId), { headers, signal: linked.signal });
      if (res.status === 204) return { ended: true };
      if (!res.ok) {
        const err = await errorFromResponse(res);
        return err.fatal && !(err.status === 404 && err.code !== 'TASK_NOT_FOUND') ? { fatal: err } : {};
      }
      return {};
    } catch {
      return {};
    } finally {
      clearTimeout(timer);
      ac.abort(); // a 200 stream is not read
      linked.dispose();
    }
  }

  // ---------------------------------------------------------------- WebSocket

  private async ws(connection: number): Promise<Attempt> {
    const c = this.client;
    const conn = this.conn as AbortController;
    const Ctor = this.wsCtor() as typeof WebSocket;
    const query = await this.withSignal(conn, (signal) => this.streamQuery(signal));
    const url = c.url('webSocket', '', query).replace(/^http/, 'ws');
    return new Promise<Attempt>((resolve) => {
      const a: Attempt = { delivered: false };
      let opened = false;
      let settled = false;
      const ws = new Ctor(url);
      const settle = (extra: Partial<Attempt>) => {
        if (settled) return;
        settled = true;
        timer.clear();
        conn.signal.removeEventListener('abort', onAbort);
        try { ws.close(1000); } catch { /* already closed */ }
        resolve({ ...a, ...extra });
      };
      const timer = this.heartbeat(() => settle({ error: new Error('no frame within the heartbeat timeout (dead stream)') }));
      const onAbort = () => settle({ dropped: conn.signal.reason === 'drop' });
      conn.signal.addEventListener('abort', onAbort, { once: true });
      ws.onopen = () => {
        opened = true;
        timer.reset();
        ws.send(JSON.stringify({ action: 'subscribe', taskId: this.taskId, ...(this.cursor ? { lastEventId: this.cursor } : {}) }));
      };
      ws.onmessage = (m: MessageEvent) => {
        timer.reset();
        let f: Record<string, unknown>;
        try { f = JSON.parse(String(m.data)) as Record<string, unknown>; } catch { settle({ error: new Error('a frame that is not JSON') }); return; }
        if (f.type === 'SUBSCRIPTION_CONFIRMED') {
          if (!a.delivered) {
            a.delivered = true;
            this.status({ type: 'open', transport: 'ws', connection, after: this.cursor, retentionGap: f.retentionGap === true });
          }
        } else if (f.type === 'HEARTBEAT') {
          this.status({ type: 'heartbeat', transport: 'ws', connection });
        } else if (isTaskEvent(f)) {
          if (!this.deliver(f, 'ws', connection)) settle({});
        }
      };
      let probing = false;
      const notOpened = (detail: string) => {
        // Never got going: ask why before falling back.
        if (probing) return;
        probing = true;
        timer.clear();
        void this.probe().then((p) => {
          if (p.ended) this.ended = 'ended';
          settle(p.fatal ? { error: p.fatal } : { unavailable: !p.ended && !opened, error: new Error(detail) });
        });
      };
      // Browsers follow an error with a close event; some WebSocket
      // implementations (Node 20's) stop at the error when the upgrade is
      // refused.
      ws.onerror = () => { if (!opened && !settled) notOpened('the WebSocket could not be opened'); };
      ws.onclose = (e: CloseEvent) => {
        if (settled) return;
        if (e.code === 1000) {
          // The server closes 1000 only when the task is over; something
          // else in the path may close 1000 too, so the SSE route's 204
          // confirms it.
          timer.clear();
          void this.endedAtCursor().then((ended) => {
            if (ended && !this.ended) this.ended = 'ended';
            settle(ended ? {} : { error: new Error('websocket closed 1000 before the end of the task') });
          });
        } else if (e.code === 1008) {
          const code = e.reason || 'POLICY_VIOLATION';
          settle({ error: new TaskBridgeError(e.reason ? statusOfCode(e.reason) : 400, code, 'websocket closed 1008') });
        } else if (!opened || !a.delivered) {
          notOpened(`websocket closed ${e.code}`);
        } else {
          settle({ error: new Error(`websocket closed ${e.code}${e.reason ? ` ${e.reason}` : ''}`) });
        }
      };
    });
  }

  // ---------------------------------------------------------------- SSE

  private async sse(connection: number, proven: boolean): Promise<Attempt> {
    return this.esCtor() ? this.eventSource(connection, proven) : this.fetchSSE(connection, proven);
  }

  /** onFrame handles one SSE data message; false ends the connection. */
  private sseFrame(data: string, a: Attempt, connection: number): boolean | Error {
    let f: unknown;
    try { f = JSON.parse(data); } catch { return new Error('a data line that is not JSON'); }
    const o = f as Record<string, unknown>;
    if (o && o.type === 'HEARTBEAT') {
      this.status({ type: 'heartbeat', transport: 'sse', connection });
      return true;
    }
    if (!isTaskEvent(f)) return new Error('a data line that is not an event');
    void a;
    return this.deliver(f, 'sse', connection);
  }

  private opened(a: Attempt, connection: number): void {
    if (a.delivered) return;
    a.delivered = true;
    this.status({ type: 'open', transport: 'sse', connection, after: this.cursor, retentionGap: false });
  }

  private async eventSource(connection: number, proven: boolean): Promise<Attempt> {
    const c = this.client;
    const conn = this.conn as AbortController;
    const Ctor = this.esCtor() as typeof EventSource;
    const query = await this.withSignal(conn, (signal) => this.streamQuery(signal));
    // EventSource cannot set Last-Event-ID on its first request: the cursor
    // goes in lastEventId (a reconnect is always a new EventSource).
    const url = c.url('streamEvents', this.taskId, { ...query, lastEventId: this.cursor || undefined });
    return new Promise<Attempt>((resolve) => {
      const a: Attempt = { delivered: false };
      let settled = false;
      let open = false;
      const es = new Ctor(url, { withCredentials: c.options.credentials === 'include' });
      const settle = (extra: Partial<Attempt>) => {
        if (settled) return;
        settled = true;
        timer.clear();
        conn.signal.removeEventListener('abort', onAbort);
        es.close();
        resolve({ ...a, ...extra });
      };
      const timer = this.heartbeat(() => settle({
        unavailable: !proven && !a.delivered, // a proxy buffering the stream
        error: new Error('no data within the heartbeat timeout (dead or buffered stream)'),
      }));
      const onAbort = () => settle({ dropped: conn.signal.reason === 'drop' });
      conn.signal.addEventListener('abort', onAbort, { once: true });
      es.onopen = () => { open = true; timer.reset(); };
      es.onmessage = (m: MessageEvent) => {
        timer.reset();
        this.opened(a, connection);
        const r = this.sseFrame(String(m.data), a, connection);
        if (r instanceof Error) settle({ error: r });
        else if (!r) settle({});
      };
      es.onerror = () => {
        // EventSource would reconnect by itself, with a spent ticket: the
        // watch reconnects instead, with a fresh one and its own cursor.
        if (settled) return;
        es.close();
        if (a.delivered) { settle({ error: new Error('the stream ended before the task') }); return; }
        timer.clear();
        void this.probeStream().then((p) => {
          if (p.ended) this.ended = 'ended';
          settle(p.fatal ? { error: p.fatal } : { unavailable: !p.ended, error: new Error(open ? 'the stream ended before any data' : 'the stream could not be opened') });
        });
      };
    });
  }

  private async fetchSSE(connection: number, proven: boolean): Promise<Attempt> {
    const c = this.client;
    const conn = this.conn as AbortController;
    const a: Attempt = { delivered: false };
    const dead = new AbortController();
    const timer = this.heartbeat(() => dead.abort('dead'));
    const linked = linkSignals(conn.signal, dead.signal, this.stop.signal);
    const signal = linked.signal;
    try {
      // fetch sends the client's headers (the token): no ticket needed.
      const headers: Record<string, string> = { Accept: 'text/event-stream', 'Cache-Control': 'no-cache' };
      if (this.cursor) headers['Last-Event-ID'] = this.cursor;
      const res = await c.fetch(c.url('streamEvents', this.taskId), { headers, signal });
      if (res.status === 204) {
        this.ended = 'ended';
        return { delivered: true };
      }
      if (!res.ok) {
        const err = await errorFromResponse(res);
        return { delivered: false, error: err, unavailable: res.status === 404 && err.code !== 'TASK_NOT_FOUND' };
      }
      if (!(res.headers.get('Content-Type') ?? '').startsWith('text/event-stream') || !res.body) {
        return { delivered: false, unavailable: true, error: new Error(`an answer of type ${res.headers.get('Content-Type')}`) };
      }
      timer.reset();
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      const parser = new SSEParser();
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return { ...a, error: new Error('the stream ended before the task') };
          timer.reset();
          for (const item of parser.push(value)) {
            this.opened(a, connection);
            if (item.comment) continue;
            const r = this.sseFrame(item.data, a, connection);
            if (r instanceof Error) return { ...a, error: r };
            if (!r) return a;
          }
        }
      } finally {
        reader.cancel().catch(() => { /* aborted */ });
      }
    } catch (err) {
      if (conn.signal.aborted) return { ...a, dropped: conn.signal.reason === 'drop' };
      if (dead.signal.aborted) {
        return { ...a, unavailable: !proven && !a.delivered, error: new Error('no data within the heartbeat timeout (dead or buffered stream)') };
      }
      return { ...a, error: err };
    } finally {
      timer.clear();
      linked.dispose();
    }
  }

  // ---------------------------------------------------------------- long-poll

  private async poll(connection: number): Promise<Attempt> {
    const c = this.client;
    const conn = this.conn as AbortController;
    const linked = linkSignals(conn.signal, this.stop.signal);
    const signal = linked.signal;
    const a: Attempt = { delivered: false };
    let early = 0;
    try {
      for (;;) {
        const start = Date.now();
        const page = await c.poll(this.taskId, { after: this.cursor, waitMs: c.options.pollWaitMs, maxEvents: 100, signal }, 1);
        if (!a.delivered) {
          a.delivered = true;
          this.status({ type: 'open', transport: 'poll', connection, after: this.cursor, retentionGap: page.retentionGap === true });
        }
        for (const ev of page.events) {
          if (!this.deliver(ev, 'poll', connection)) return a;
        }
        if (page.events.length > 0 || Date.now() - start >= c.options.pollWaitMs / 2) {
          early = 0;
          continue;
        }
        // Empty long before the wait was over: the task may have ended at
        // or before the cursor, or the server does not wait.
        if (await this.endedAtCursor()) {
          this.ended = 'ended';
          return a;
        }
        early += 1;
        await sleep(c.backoff(Math.min(early, 5)), signal);
      }
    } catch (err) {
      if (conn.signal.aborted) return { ...a, dropped: conn.signal.reason === 'drop' };
      const unavailable = err instanceof TaskBridgeError && err.status === 404 && err.code !== 'TASK_NOT_FOUND';
      return { ...a, error: err, unavailable };
    } finally {
      linked.dispose();
    }
  }

  /** withSignal runs fn with a signal of the connection and the watch. */
  private async withSignal<T>(conn: AbortController, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const linked = linkSignals(conn.signal, this.stop.signal);
    try {
      return await fn(linked.signal);
    } finally {
      linked.dispose();
    }
  }
}

function describe(err: unknown): string {
  if (err === undefined) return 'closed';
  if (err instanceof Error) return err.message;
  return String(err);
}
