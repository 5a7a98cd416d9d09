// Browser test of the quickstart's demo page: real headless Chromium (the
// Debian package, driven through playwright-core) against a running
// quickstart. scripts/test-browser.sh builds and starts the server and runs
// this file with BASE_URL set.
//
// Every wait is on page state (data-* attributes the page sets when it has
// rendered something), never a fixed sleep. After each task the rendered log
// is compared with the task's full event list read from the long-poll route.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const BASE = process.env.BASE_URL;
const ARTIFACTS = path.resolve(process.env.ARTIFACTS_DIR || path.join(here, '../../../artifacts'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
  '--no-first-run', '--disable-component-update', '--disable-sync',
];
const WAIT = 20_000; // upper bound for one page state to appear
const TERMINAL = new Set(['TASK_COMPLETED', 'TASK_FAILED', 'TASK_CANCELLED']);
const TRANSPORTS = ['ws', 'sse', 'poll'];

assert.ok(BASE, 'BASE_URL must point at a running quickstart (scripts/test-browser.sh sets it)');

let browser;

before(async () => {
  const health = await fetch(`${BASE}/health`);
  assert.equal(health.status, 200, 'quickstart /health');
  await mkdir(ARTIFACTS, { recursive: true });
  // launch() gives Chromium a fresh temporary user-data-dir, removed on close.
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60_000 });
});

after(async () => {
  if (browser) await browser.close();
});

let userSeq = 0;
function user(name) { userSeq += 1; return `e2e-${name}-${process.pid}-${userSeq}`; }

// open loads the page (optionally with ?transport=) in a fresh context and
// collects uncaught page errors.
async function open(t, transport) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  const errors = [];
  page.on('pageerror', (err) => errors.push(err));
  t.after(async () => {
    assert.deepEqual(errors.map(String), [], 'uncaught errors in the page');
    await context.close();
  });
  await page.goto(transport ? `${BASE}/?transport=${transport}` : `${BASE}/`);
  await page.waitForSelector('#app[data-ready="true"]');
  return page;
}

// start fills the form, starts the task and returns its id.
async function start(page, { user: name, type, steps, delayMs }) {
  await page.fill('#user', name);
  await page.selectOption('#task-type', type);
  if (steps !== undefined) await page.fill('#input-steps', String(steps));
  if (delayMs !== undefined) await page.fill('#input-delay', String(delayMs));
  await page.click('#start');
  await page.waitForSelector('#app:not([data-task-id=""])[data-task-id], #app[data-stopped="true"]');
  return page.getAttribute('#app', 'data-task-id');
}

const app = (page, key) => page.$eval('#app', (el, k) => el.dataset[k], key);

async function waitDone(page) {
  await page.waitForSelector('#app[data-terminal="true"]');
}

async function waitEvents(page, n) {
  await page.waitForFunction((min) => Number(document.getElementById('app').dataset.eventCount) >= min, n);
}

async function renderedLog(page) {
  return page.$$eval('#log-body tr[data-event-id]', (rows) => rows.map((r) => ({
    id: r.dataset.eventId, type: r.dataset.type, conn: Number(r.dataset.conn), via: r.dataset.via,
  })));
}

// serverEvents reads the task's whole event list from the long-poll route.
async function serverEvents(name, taskId) {
  const all = [];
  let cursor = '';
  for (let i = 0; i < 100; i += 1) {
    const q = new URLSearchParams({ waitTimeoutMs: '5000', maxEvents: '500' });
    if (cursor) q.set('afterEventId', cursor);
    const res = await fetch(`${BASE}/api/v1/tasks/${encodeURIComponent(taskId)}/events?${q}`, {
      headers: { Authorization: `Bearer ${name}` },
    });
    assert.equal(res.status, 200, 'poll route');
    const page = await res.json();
    all.push(...page.events);
    if (all.length && TERMINAL.has(all[all.length - 1].type)) return all;
    if (page.nextAfterEventId) cursor = page.nextAfterEventId;
  }
  assert.fail(`task ${taskId} did not end`);
  return all;
}

// assertLogMatches: the rendered log holds every event of the task exactly
// once, in the server's order.
async function assertLogMatches(page, name, taskId) {
  const rows = await renderedLog(page);
  const events = await serverEvents(name, taskId);
  const ids = rows.map((r) => r.id);
  assert.equal(new Set(ids).size, ids.length, `duplicate eventId in the log: ${ids}`);
  assert.deepEqual(ids, events.map((e) => e.eventId), 'rendered eventIds vs the server\'s list');
  assert.deepEqual(rows.map((r) => r.type), events.map((e) => e.type));
  assert.equal(await app(page, 'eventCount'), String(events.length));
  return { rows, events };
}

async function resultJSON(page) {
  return JSON.parse(await page.textContent('#result-body'));
}

const progressTypes = (steps) => ['TASK_STARTED', ...Array(steps).fill('TASK_PROGRESS'), 'TASK_COMPLETED'];

for (const transport of TRANSPORTS) {
  test(`demo.progress runs to completion over ${transport}`, { timeout: 60_000 }, async (t) => {
    const page = await open(t, transport);
    const name = user(`progress-${transport}`);
    const taskId = await start(page, { user: name, type: 'demo.progress', steps: 5, delayMs: 40 });
    assert.ok(taskId, 'task created');
    await waitDone(page);

    assert.equal(await app(page, 'status'), 'COMPLETED');
    assert.equal(await app(page, 'transport'), transport);
    assert.equal(await app(page, 'progress'), '100');
    assert.equal(await app(page, 'connections'), '1');
    assert.equal(await app(page, 'duplicates'), '0');
    assert.deepEqual(await resultJSON(page), { steps: 5 });
    assert.equal(await page.getAttribute('#result', 'data-outcome'), 'completed');
    assert.equal(await page.isDisabled('#cancel'), true, 'no cancel once terminal');
    const { rows } = await assertLogMatches(page, name, taskId);
    assert.deepEqual(rows.map((r) => r.type), progressTypes(5));
    assert.ok(rows.every((r) => r.via === transport && r.conn === 1));
  });

  test(`dropping the ${transport} connection mid-task resumes with no duplicate and no gap`, { timeout: 60_000 }, async (t) => {
    const page = await open(t, transport);
    const name = user(`drop-${transport}`);
    const steps = 20;
    const taskId = await start(page, { user: name, type: 'demo.progress', steps, delayMs: 100 });
    await waitEvents(page, 3);
    await page.click('#drop');
    assert.equal(await app(page, 'drops'), '1');
    assert.equal(await app(page, 'terminal'), 'false', 'the drop happened mid-task');
    await waitDone(page);

    assert.equal(await app(page, 'status'), 'COMPLETED');
    assert.deepEqual(await resultJSON(page), { steps });
    const { rows } = await assertLogMatches(page, name, taskId);
    assert.deepEqual(rows.map((r) => r.type), progressTypes(steps));
    assert.ok(rows.every((r) => r.via === transport), 'a pinned transport stays pinned');
    const before = rows.filter((r) => r.conn === 1).length;
    const afterDrop = rows.filter((r) => r.conn >= 2).length;
    assert.ok(before >= 3, `events before the drop: ${before}`);
    assert.ok(afterDrop >= 1, 'events after the drop come from the new connection');
    assert.equal(before + afterDrop, steps + 2);
    assert.ok(Number(await app(page, 'connections')) >= 2);
    assert.match(await page.textContent('#conn-log'), /dropped by you; reconnecting/);
  });
}

test('demo.approval completes after clicking approve (auto chain picks WebSocket)', { timeout: 60_000 }, async (t) => {
  const page = await open(t);
  const name = user('approval');
  const taskId = await start(page, { user: name, type: 'demo.approval' });
  await page.waitForSelector('#actions button[data-action="approve"]');
  assert.equal(await app(page, 'status'), 'SUSPENDED');
  assert.equal(await app(page, 'transport'), 'ws');
  assert.equal(await page.isVisible('#actions button[data-action="reject"]'), true);
  await page.click('#actions button[data-action="approve"]');
  await waitDone(page);

  assert.equal(await app(page, 'status'), 'COMPLETED');
  assert.equal(await app(page, 'actionStatus'), 'ACCEPTED');
  assert.deepEqual(await resultJSON(page), { decision: 'approve' });
  assert.equal(await page.isVisible('#suspension'), false);
  const { rows, events } = await assertLogMatches(page, name, taskId);
  assert.deepEqual(rows.map((r) => r.type), ['TASK_STARTED', 'TASK_SUSPENDED', 'TASK_ACTION_ACCEPTED', 'TASK_COMPLETED']);
  assert.equal(events[2].payload.actionType, 'approve');
  assert.equal(events[2].payload.suspendId, events[1].payload.suspendId, 'the action names the suspension');
});

test('demo.sleep is cancelled with the cancel button', { timeout: 60_000 }, async (t) => {
  const page = await open(t, 'sse');
  const name = user('cancel');
  const taskId = await start(page, { user: name, type: 'demo.sleep', delayMs: 50 });
  await waitEvents(page, 3);
  assert.equal(await app(page, 'status'), 'RUNNING');
  await page.click('#cancel');
  await waitDone(page);

  assert.equal(await app(page, 'status'), 'CANCELLED');
  assert.equal(await app(page, 'cancelStatus'), 'CANCELLATION_REQUESTED');
  assert.equal(await page.getAttribute('#result', 'data-outcome'), 'cancelled');
  assert.match(await page.textContent('#result-body'), /cancelled_by_user/);
  const { rows, events } = await assertLogMatches(page, name, taskId);
  assert.equal(rows[0].type, 'TASK_STARTED');
  assert.equal(rows[rows.length - 1].type, 'TASK_CANCELLED');
  assert.ok(rows.slice(1, -1).every((r) => r.type === 'TASK_PROGRESS'));
  assert.ok(events.slice(1, -1).every((e) => e.payload.progress < 100));
});

test('the auto chain falls back WebSocket -> SSE -> long-poll, resuming from the cursor', { timeout: 60_000 }, async (t) => {
  const page = await open(t);
  // The first WebSocket is proxied to the server and cut after 3 events; every
  // later one is refused, and so is every EventSource: the page must fall back
  // to long-polling and carry on from its cursor.
  let sockets = 0;
  await page.routeWebSocket(/\/api\/v1\/tasks\/ws/, (ws) => {
    sockets += 1;
    if (sockets > 1) {
      ws.close();
      return;
    }
    const server = ws.connectToServer();
    let events = 0;
    server.onMessage((message) => {
      ws.send(message);
      if (JSON.parse(message).eventId && ++events === 3) {
        ws.close();
        server.close();
      }
    });
  });
  await page.route('**/events/stream**', (route) => route.fulfill({ status: 503, contentType: 'text/plain', body: 'blocked by the test' }));

  const name = user('chain');
  const steps = 12;
  const taskId = await start(page, { user: name, type: 'demo.progress', steps, delayMs: 100 });
  await waitDone(page);

  assert.equal(await app(page, 'status'), 'COMPLETED');
  assert.equal(await app(page, 'transport'), 'poll');
  const { rows } = await assertLogMatches(page, name, taskId);
  assert.deepEqual(rows.map((r) => r.type), progressTypes(steps));
  assert.deepEqual(rows.slice(0, 3).map((r) => r.via), ['ws', 'ws', 'ws']);
  assert.equal(rows[rows.length - 1].via, 'poll');
  const log = await page.textContent('#conn-log');
  assert.match(log, /falling back to SSE/);
  assert.match(log, /falling back to long-poll/);
});

test('errors show the envelope code and message', { timeout: 60_000 }, async (t) => {
  const page = await open(t);
  const tests = [
    { name: 'input out of range', user: user('errors'), type: 'demo.progress', steps: 5000, code: 'INVALID_REQUEST', message: /steps/ },
    { name: 'no user', user: '', type: 'demo.fail', code: 'AUTHENTICATION_ERROR', message: /Bearer/ },
  ];
  for (const tc of tests) {
    await start(page, tc);
    await page.waitForSelector('#error:not([hidden])');
    assert.equal(await page.getAttribute('#error', 'data-code'), tc.code, tc.name);
    assert.equal(await page.textContent('#error-code'), tc.code, tc.name);
    assert.match(await page.textContent('#error-message'), tc.message, tc.name);
    assert.equal(await app(page, 'taskId'), '', `${tc.name}: no task`);
  }

  // A task that fails shows the failure's code and message.
  await start(page, { user: user('fail'), type: 'demo.fail' });
  await waitDone(page);
  assert.equal(await app(page, 'status'), 'FAILED');
  assert.equal(await page.getAttribute('#result', 'data-code'), 'DEMO_FAILURE');
  assert.match(await page.textContent('#result-body'), /failed on purpose/);
});

test('screenshot of a finished task', { timeout: 60_000 }, async (t) => {
  const page = await open(t);
  const name = 'alice';
  const steps = 8;
  const taskId = await start(page, { user: name, type: 'demo.progress', steps, delayMs: 150 });
  await waitEvents(page, 4);
  await page.click('#drop');
  await waitDone(page);
  await assertLogMatches(page, name, taskId);
  // Let the row highlight animation finish so the picture is stable.
  await page.evaluate(() => Promise.all(document.getAnimations().map((a) => a.finished)));
  const file = path.join(ARTIFACTS, 'demo.png');
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot: ${path.relative(process.cwd(), file) || file}`);
});
