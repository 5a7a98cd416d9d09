// The TaskBridge TypeScript client (clients/js) in real headless Chromium
// against the running quickstart: the quickstart serves the client's
// modules (/demo/taskbridge/), and each test imports them in a page and
// watches tasks there, with the browser's own WebSocket, EventSource and
// fetch, authenticated by stream tickets. scripts/test-browser.sh starts
// the quickstart (with -max-streams 3) and runs this file with BASE_URL set.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const BASE = process.env.BASE_URL;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
  '--no-first-run', '--disable-component-update', '--disable-sync'];
const TRANSPORTS = ['ws', 'sse', 'poll'];

assert.ok(BASE, 'BASE_URL must point at a running quickstart (scripts/test-browser.sh sets it)');

let browser;
before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
});
after(async () => { if (browser) await browser.close(); });

let seq = 0;
const user = (name) => `jsb-${name}-${process.pid}-${++seq}`;

// open returns a page on the quickstart's origin with the client loaded as
// window.tb, and collects uncaught page errors.
async function open(t) {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  const errors = [];
  page.on('pageerror', (err) => errors.push(err));
  t.after(async () => {
    assert.deepEqual(errors.map(String), [], 'uncaught errors in the page');
    await context.close();
  });
  await page.goto(`${BASE}/health`);
  await page.evaluate(async () => { window.tb = await import('/demo/taskbridge/index.js'); });
  return page;
}

// run watches a task in the page and returns {events, error, statuses,
// connections, vias} (vias: the transport of each event).
async function run(page, args) {
  return page.evaluate(async ({ token, taskId, from, opts }) => {
    const c = new window.tb.TaskBridgeClient({ token, streamTickets: true, backoffMinMs: 10, backoffMaxMs: 200, ...opts });
    const statuses = [];
    const w = c.watch(taskId, { from, onStatus: (s) => statuses.push(s) });
    const events = [];
    let error = null;
    try {
      for await (const ev of w) events.push(ev);
    } catch (e) {
      error = { name: e.name, status: e.status, code: e.code, message: e.message };
    }
    return { events, error, statuses, connections: w.connections, vias: events.map((ev) => w.deliveredBy(ev).transport) };
  }, args);
}

async function create(token, input, taskType = 'demo.progress') {
  const res = await fetch(`${BASE}/api/v1/tasks`, {
    method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ clientRequestId: `${token}-${++seq}`, taskType, input }),
  });
  assert.equal(res.status, 201);
  return (await res.json()).taskId;
}

async function serverIds(token, taskId) {
  const res = await fetch(`${BASE}/api/v1/tasks/${taskId}/events?maxEvents=500`, { headers: { Authorization: `Bearer ${token}` } });
  return (await res.json()).events.map((e) => e.eventId);
}

const ids = (evs) => evs.map((e) => e.eventId);

for (const transport of TRANSPORTS) {
  test(`in Chromium over ${transport}: the whole log once, in order`, { timeout: 60_000 }, async (t) => {
    const page = await open(t);
    const name = user(transport);
    const taskId = await create(name, { steps: 6, delayMs: 30 });
    const r = await run(page, { token: name, taskId, opts: { transports: [transport] } });
    assert.equal(r.error, null);
    assert.deepEqual(ids(r.events), await serverIds(name, taskId));
    assert.ok(r.vias.every((v) => v === transport));
    assert.equal(r.connections, 1);
  });
}

test('in Chromium, a cursor at the terminal event ends every transport at once', { timeout: 60_000 }, async (t) => {
  const page = await open(t);
  const name = user('terminal');
  const taskId = await create(name, { steps: 1, delayMs: 0 });
  const all = await run(page, { token: name, taskId, opts: {} });
  const last = all.events.at(-1);
  assert.equal(last.type, 'TASK_COMPLETED');
  for (const transport of TRANSPORTS) {
    const r = await run(page, { token: name, taskId, from: last.eventId, opts: { transports: [transport] } });
    assert.equal(r.error, null, transport);
    assert.deepEqual(r.events, [], transport);
    assert.equal(r.statuses.at(-1).reason, 'ended', transport);
  }
});

test('in Chromium, refusals are typed errors on every transport (401, 404, 429)', { timeout: 60_000 }, async (t) => {
  const page = await open(t);
  const owner = user('owner');
  const taskId = await create(owner, { delayMs: 500 }, 'demo.sleep');
  for (const transport of TRANSPORTS) {
    for (const tc of [
      { token: undefined, id: taskId, status: 401, code: 'AUTHENTICATION_ERROR' },
      { token: owner, id: 'no-such-task', status: 404, code: 'TASK_NOT_FOUND' },
      { token: user('other'), id: taskId, status: 404, code: 'TASK_NOT_FOUND' },
    ]) {
      const r = await run(page, { token: tc.token, taskId: tc.id, opts: { transports: [transport] } });
      assert.equal(r.error?.name, 'TaskBridgeError', `${transport} ${tc.code}: ${JSON.stringify(r.error)}`);
      assert.equal(r.error.status, tc.status, transport);
      assert.equal(r.error.code, tc.code, transport);
    }
  }
  // 429: the test quickstart allows 3 streams per user; hold them in the page.
  const r = await page.evaluate(async ({ token, taskId }) => {
    const c = new window.tb.TaskBridgeClient({ token, streamTickets: true });
    const ac = new AbortController();
    const held = [0, 1, 2].map(() => {
      const w = c.watch(taskId, { signal: ac.signal, transports: ['sse'] });
      const it = w[Symbol.asyncIterator]();
      return it.next();
    });
    await Promise.all(held); // each stream delivered its first event
    const out = {};
    for (const transport of ['ws', 'sse']) {
      try {
        for await (const _ of c.watch(taskId, { transports: [transport] })) { /* nothing arrives */ }
      } catch (e) {
        out[transport] = { status: e.status, code: e.code };
      }
    }
    ac.abort();
    return out;
  }, { token: owner, taskId });
  assert.deepEqual(r, { ws: { status: 429, code: 'TOO_MANY_STREAMS' }, sse: { status: 429, code: 'TOO_MANY_STREAMS' } });
  await fetch(`${BASE}/api/v1/tasks/${taskId}/cancel`, { method: 'POST', headers: { Authorization: `Bearer ${owner}` } });
});

test('in Chromium, a WebSocket that goes silent is replaced after the heartbeat timeout', { timeout: 60_000 }, async (t) => {
  const page = await open(t);
  // The first WebSocket forwards three frames, then swallows everything
  // (no close): a dead path. Later ones pass through.
  let sockets = 0;
  await page.routeWebSocket(/\/api\/v1\/tasks\/ws/, (ws) => {
    const n = ++sockets;
    const server = ws.connectToServer();
    let frames = 0;
    server.onMessage((m) => { if (n > 1 || ++frames <= 3) ws.send(m); });
  });
  const name = user('silent');
  const taskId = await create(name, { steps: 30, delayMs: 100 }); // outlasts the timeout
  const r = await run(page, { token: name, taskId, opts: { transports: ['ws'], heartbeatTimeoutMs: 1500 } });
  assert.equal(r.error, null);
  assert.deepEqual(ids(r.events), await serverIds(name, taskId));
  assert.ok(r.statuses.some((s) => s.type === 'closed' && /heartbeat timeout/.test(s.reason)), 'a dead stream was reported');
  assert.ok(r.connections >= 2);
});

test('in Chromium, a refused WebSocket and a held SSE response fall back to long-poll', { timeout: 60_000 }, async (t) => {
  const page = await open(t);
  await page.routeWebSocket(/\/api\/v1\/tasks\/ws/, (ws) => ws.close({ code: 1011, reason: 'no upgrades here' }));
  // A proxy that holds the stream: the request never gets an answer while
  // the watch waits for it.
  const held = [];
  await page.route('**/events/stream**', (route) => { held.push(route); });
  const name = user('fallback');
  const taskId = await create(name, { steps: 8, delayMs: 300 });
  const r = await run(page, { token: name, taskId, opts: { heartbeatTimeoutMs: 1500 } });
  for (const h of held) h.abort().catch(() => {});
  assert.equal(r.error, null);
  assert.deepEqual(ids(r.events), await serverIds(name, taskId));
  assert.deepEqual(r.statuses.filter((s) => s.type === 'fallback').map((s) => `${s.from}->${s.to}`), ['ws->sse', 'sse->poll']);
  assert.deepEqual(r.statuses.filter((s) => s.type === 'open').map((s) => s.transport), ['poll']);
});

test('in Chromium, drop() resumes on a new connection with no gap and no duplicate', { timeout: 60_000 }, async (t) => {
  const page = await open(t);
  const name = user('drop');
  for (const transport of TRANSPORTS) {
    const taskId = await create(name, { steps: 10, delayMs: 100 });
    const r = await page.evaluate(async ({ token, taskId, transport }) => {
      const c = new window.tb.TaskBridgeClient({ token, streamTickets: true, transports: [transport] });
      const w = c.watch(taskId);
      const events = [];
      for await (const ev of w) {
        events.push({ eventId: ev.eventId, connection: w.deliveredBy(ev).connection });
        if (events.length === 3) w.drop(100);
      }
      return events;
    }, { token: name, taskId, transport });
    assert.deepEqual(r.map((e) => e.eventId), await serverIds(name, taskId), transport);
    // Events already received before the drop may still be delivered by
    // the first connection; everything after comes from the second.
    assert.ok(r.every((e, i) => i === 0 || e.connection >= r[i - 1].connection), transport);
    assert.ok(r.some((e) => e.connection === 2), transport);
  }
});
