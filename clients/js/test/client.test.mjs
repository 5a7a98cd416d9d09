// The client in Node against the real quickstart: every transport, the
// fallback chain behind proxy stand-ins, cuts and frozen paths mid-stream,
// the end at a terminal cursor, typed errors, and the unary calls.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TaskBridgeError, compareEventIds } from '../dist/index.js';
import { BASE, client, collect, httpProxy, serverEvents, tcpProxy, user, waitFor } from './helpers.mjs';

const TRANSPORTS = ['ws', 'sse', 'poll'];
const ids = (evs) => evs.map((e) => e.eventId);

for (const transport of TRANSPORTS) {
  test(`watch over ${transport} alone yields the whole log once, in order`, async () => {
    const name = user(`each-${transport}`);
    const c = client(name, { transports: [transport] });
    const task = await c.create({ taskType: 'demo.progress', input: { steps: 8, delayMs: 10 } });
    const statuses = [];
    const w = c.watch(task.taskId, { onStatus: (s) => statuses.push(s) });
    const { events, error } = await collect(w);
    assert.equal(error, undefined);
    assert.deepEqual(ids(events), ids(await serverEvents(name, task.taskId)));
    assert.equal(events.at(-1).type, 'TASK_COMPLETED');
    assert.deepEqual(events.at(-1).payload.result, { steps: 8 });
    assert.equal(w.connections, 1);
    assert.ok(events.every((ev) => w.deliveredBy(ev)?.transport === transport));
    assert.deepEqual(statuses.filter((s) => s.type === 'open').map((s) => s.transport), [transport]);
    assert.equal(statuses.at(-1).type, 'end');
    assert.equal(statuses.at(-1).reason, 'terminal');
  });
}

test('watch from a cursor yields only what follows it, on every transport', async () => {
  const name = user('resume');
  const c = client(name);
  const task = await c.create({ taskType: 'demo.progress', input: { steps: 5, delayMs: 0 } });
  const all = (await collect(c.watch(task.taskId))).events;
  assert.equal(all.length, 7);
  for (const transport of TRANSPORTS) {
    const r = await collect(client(name, { transports: [transport] }).watch(task.taskId, { from: all[3].eventId }));
    assert.equal(r.error, undefined, transport);
    assert.deepEqual(ids(r.events), ids(all.slice(4)), transport);
  }
});

test('a watch whose cursor is the terminal event ends at once, on every transport', async () => {
  const name = user('terminal');
  const c = client(name);
  const task = await c.create({ taskType: 'demo.progress', input: { steps: 2, delayMs: 0 } });
  const all = (await collect(c.watch(task.taskId))).events;
  for (const transport of TRANSPORTS) {
    const start = Date.now();
    const statuses = [];
    const r = await collect(client(name, { transports: [transport] }).watch(task.taskId, { from: all.at(-1).eventId, onStatus: (s) => statuses.push(s) }));
    assert.equal(r.error, undefined, transport);
    assert.deepEqual(r.events, [], transport);
    assert.ok(Date.now() - start < 5000, `${transport}: no waiting for a task that is over`);
    assert.equal(statuses.at(-1).reason, 'ended', transport);
  }
});

for (const tc of [
  { name: 'WebSocket refused by a proxy: SSE', bufferSSE: false, want: 'sse' },
  { name: 'WebSocket refused and SSE buffered by a proxy: long-poll', bufferSSE: true, want: 'poll' },
]) {
  test(`fallback: ${tc.name}`, async (t) => {
    const proxy = await httpProxy(t, { bufferSSE: tc.bufferSSE });
    const name = user('fallback');
    const c = client(name, { baseUrl: proxy.base, heartbeatTimeoutMs: 1500 });
    const task = await c.create({ taskType: 'demo.progress', input: { steps: 10, delayMs: 400 } });
    const statuses = [];
    const w = c.watch(task.taskId, { onStatus: (s) => statuses.push(s) });
    const { events, error } = await collect(w);
    assert.equal(error, undefined);
    assert.deepEqual(ids(events), ids(await serverEvents(name, task.taskId)));
    assert.deepEqual(statuses.filter((s) => s.type === 'open').map((s) => s.transport), [tc.want], JSON.stringify(statuses.filter((s) => s.type !== 'heartbeat')));
    assert.ok(events.every((ev) => w.deliveredBy(ev).transport === tc.want));
    const fallbacks = statuses.filter((s) => s.type === 'fallback').map((s) => `${s.from}->${s.to}`);
    assert.deepEqual(fallbacks, tc.want === 'sse' ? ['ws->sse'] : ['ws->sse', 'sse->poll']);
  });
}

for (const transport of TRANSPORTS) {
  test(`cuts mid-stream over ${transport}: resumed with no gap and no duplicate`, async (t) => {
    const proxy = await tcpProxy(t);
    const name = user(`cut-${transport}`);
    const c = client(name, { baseUrl: proxy.base, transports: [transport], pollWaitMs: 1000 });
    const task = await c.create({ taskType: 'demo.progress', input: { steps: 24, delayMs: 60 } });
    const w = c.watch(task.taskId);
    const events = [];
    const done = (async () => { for await (const ev of w) events.push(ev); })();
    for (const after of [3, 9, 15]) {
      await waitFor(() => events.length >= after, `${after} events`);
      proxy.cut();
    }
    await done;
    assert.deepEqual(ids(events), ids(await serverEvents(name, task.taskId)));
    for (let i = 1; i < events.length; i++) assert.equal(compareEventIds(events[i - 1].eventId, events[i].eventId), -1);
    if (transport !== 'poll') assert.ok(w.connections >= 4, `reconnected after each cut: ${w.connections}`);
  });
}

test('drop() closes the connection and the watch resumes from its cursor', async () => {
  const name = user('drop');
  const c = client(name, { transports: ['ws'] });
  const task = await c.create({ taskType: 'demo.progress', input: { steps: 10, delayMs: 50 } });
  const statuses = [];
  const w = c.watch(task.taskId, { onStatus: (s) => statuses.push(s) });
  const events = [];
  for await (const ev of w) {
    events.push(ev);
    if (events.length === 3) w.drop(200);
  }
  assert.deepEqual(ids(events), ids(await serverEvents(name, task.taskId)));
  assert.equal(w.connections, 2);
  const dropped = statuses.find((s) => s.type === 'closed' && s.dropped);
  assert.equal(dropped.retryInMs, 200);
  assert.ok(events.slice(3).every((ev) => w.deliveredBy(ev).connection === 2));
});

for (const transport of ['ws', 'sse']) {
  test(`a frozen network path over ${transport} is found by the heartbeat timeout and replaced`, async (t) => {
    const proxy = await tcpProxy(t);
    const name = user(`freeze-${transport}`);
    const c = client(name, { baseUrl: proxy.base, transports: [transport], heartbeatTimeoutMs: 1500 });
    const task = await c.create({ taskType: 'demo.progress', input: { steps: 12, delayMs: 150 } });
    const statuses = [];
    const w = c.watch(task.taskId, { onStatus: (s) => statuses.push(s) });
    const events = [];
    const done = (async () => { for await (const ev of w) events.push(ev); })();
    await waitFor(() => events.length >= 2, 'two events');
    assert.ok(proxy.freeze() > 0);
    await done;
    assert.deepEqual(ids(events), ids(await serverEvents(name, task.taskId)));
    const dead = statuses.find((s) => s.type === 'closed' && /heartbeat timeout/.test(s.reason));
    assert.ok(dead, `a dead stream was reported: ${JSON.stringify(statuses.filter((s) => s.type === 'closed'))}`);
    assert.ok(w.connections >= 2);
  });
}

for (const transport of TRANSPORTS) {
  test(`typed errors end the watch over ${transport}`, async () => {
    const owner = user('owner');
    const task = await client(owner).create({ taskType: 'demo.sleep', input: { delayMs: 1000 } });
    for (const tc of [
      { name: 'no credentials', token: undefined, id: task.taskId, status: 401, code: 'AUTHENTICATION_ERROR', flag: 'unauthorized' },
      { name: 'unknown task', token: owner, id: 'no-such-task', status: 404, code: 'TASK_NOT_FOUND', flag: 'notFound' },
      { name: "another user's task", token: user('other'), id: task.taskId, status: 404, code: 'TASK_NOT_FOUND', flag: 'notFound' },
    ]) {
      const c = client(tc.token, { transports: [transport], streamTickets: tc.token !== undefined });
      const { events, error } = await collect(c.watch(tc.id));
      assert.deepEqual(events, [], tc.name);
      assert.ok(error instanceof TaskBridgeError, `${tc.name}: ${error}`);
      assert.equal(error.status, tc.status, tc.name);
      assert.equal(error.code, tc.code, tc.name);
      assert.equal(error[tc.flag], true, tc.name);
    }
    await client(owner).cancel(task.taskId);
  });
}

test('429: a user over the stream limit gets a typed error on ws and sse', async () => {
  const name = user('limit');
  const c = client(name);
  const task = await c.create({ taskType: 'demo.sleep', input: { delayMs: 200 } });
  // The test quickstart allows 3 streams per user: hold them.
  const holders = [];
  const ac = new AbortController();
  for (let i = 0; i < 3; i++) {
    const got = [];
    const w = client(name, { transports: ['sse'] }).watch(task.taskId, { signal: ac.signal });
    holders.push({ got, done: (async () => { try { for await (const ev of w) got.push(ev); } catch (e) { return e; } })() });
  }
  await waitFor(() => holders.every((h) => h.got.length > 0), 'three open streams');
  for (const transport of ['ws', 'sse']) {
    const { error } = await collect(client(name, { transports: [transport] }).watch(task.taskId));
    assert.ok(error instanceof TaskBridgeError, `${transport}: ${error}`);
    assert.equal(error.status, 429, transport);
    assert.equal(error.code, 'TOO_MANY_STREAMS', transport);
    assert.equal(error.rateLimited, true);
  }
  ac.abort();
  for (const h of holders) assert.equal((await h.done)?.name, 'AbortError');
  await c.cancel(task.taskId);
});

test('create is idempotent by clientRequestId; another payload is a 409', async () => {
  const c = client(user('create'));
  const req = { clientRequestId: 'js-r1', taskType: 'demo.progress', input: { steps: 1, delayMs: 0 }, metadata: { from: 'test' } };
  const first = await c.create(req);
  assert.equal(first.deduplicated, false);
  const again = await c.create(req);
  assert.equal(again.deduplicated, true);
  assert.equal(again.taskId, first.taskId);
  await assert.rejects(c.create({ ...req, input: { steps: 2 } }), (e) => e instanceof TaskBridgeError && e.conflict && e.code === 'IDEMPOTENCY_CONFLICT');
  const gen = await c.create({ taskType: 'demo.progress', input: { steps: 1 } });
  assert.match(gen.clientRequestId, /^[0-9a-f-]{36}$/);
  const multi = await c.create({ taskType: 'demo.progress', input: { steps: 1 }, attachments: [
    { filename: 'a.txt', data: 'hello' }, { filename: 'b.png', contentType: 'image/png', data: new Uint8Array([137, 80, 78, 71]) }] });
  assert.equal(multi.deduplicated, false);
  await assert.rejects(c.create({ taskType: 'demo.progress', input: { steps: 5000 } }), (e) => e.status === 400 && e.code === 'INVALID_REQUEST');
  await assert.rejects(client(undefined).create({ taskType: 'demo.progress' }), (e) => e.unauthorized);
});

test('poll, openSuspension, act (deduplicated on repeat) and cancel', async () => {
  const name = user('unary');
  const c = client(name);
  const task = await c.create({ taskType: 'demo.approval' });
  let susp = null;
  await waitFor(async () => (susp = await c.openSuspension(task.taskId)) !== null, 'the suspension');
  assert.deepEqual(susp.allowedActions, ['approve', 'reject']);
  const page = await c.poll(task.taskId);
  assert.deepEqual(page.events.map((e) => e.type), ['TASK_STARTED', 'TASK_SUSPENDED']);
  const action = { suspendId: susp.suspendId, actionType: 'approve', clientActionId: 'js-a1', payload: { note: 'ok' } };
  assert.equal((await c.act(task.taskId, action)).status, 'ACCEPTED');
  assert.equal((await c.act(task.taskId, action)).status, 'DEDUPLICATED');
  const rest = await c.poll(task.taskId, { after: page.nextAfterEventId, waitMs: 5000, maxEvents: 1 });
  assert.equal(rest.events[0].type, 'TASK_ACTION_ACCEPTED');
  assert.equal(rest.hasMore, true);
  const sleeper = await c.create({ taskType: 'demo.sleep', input: { delayMs: 50 } });
  assert.equal((await c.cancel(sleeper.taskId, 'enough')).status, 'CANCELLATION_REQUESTED');
  const { events } = await collect(c.watch(sleeper.taskId));
  assert.equal(events.at(-1).type, 'TASK_CANCELLED');
  assert.equal((await c.cancel(sleeper.taskId)).status, 'ALREADY_TERMINAL');
});

test('stream tickets are single-use and task-scoped', async () => {
  const name = user('ticket');
  const c = client(name);
  const task = await c.create({ taskType: 'demo.progress', input: { steps: 1, delayMs: 0 } });
  const t = await c.streamTicket(task.taskId);
  assert.match(t.ticket, /^tbt_[A-Za-z0-9_-]{43}$/);
  assert.equal(t.taskId, task.taskId);
  const url = `${BASE}/api/v1/tasks/${task.taskId}/events/stream?ticket=${encodeURIComponent(t.ticket)}`;
  const first = await fetch(url);
  assert.equal(first.status, 200);
  assert.match(await first.text(), /TASK_COMPLETED/);
  const again = await fetch(url);
  assert.equal(again.status, 401, 'spent');
  await assert.rejects(client(user('stranger')).streamTicket(task.taskId), (e) => e.notFound);
});

test('abort ends the watch with the signal\'s reason', async () => {
  const name = user('abort');
  const c = client(name);
  const task = await c.create({ taskType: 'demo.sleep', input: { delayMs: 50 } });
  const ac = new AbortController();
  const w = c.watch(task.taskId, { signal: ac.signal });
  const events = [];
  const err = await (async () => { try { for await (const ev of w) { events.push(ev); if (events.length === 2) ac.abort(); } } catch (e) { return e; } })();
  assert.equal(err?.name, 'AbortError');
  assert.ok(events.length >= 2);
  await c.cancel(task.taskId);
});
