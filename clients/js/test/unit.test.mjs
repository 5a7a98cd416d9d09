// Pure units: event id order, the SSE parser, option checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SSEParser, TaskBridgeClient, compareEventIds, isTaskEvent, parseEventId } from '../dist/index.js';

test('event ids compare numerically, never as strings', () => {
  assert.equal(compareEventIds('10-0', '9-0'), 1);
  assert.equal(compareEventIds('9-10', '9-9'), 1);
  assert.equal(compareEventIds('5', '5-0'), 0);
  assert.equal(compareEventIds('18446744073709551615-1', '18446744073709551615-0'), 1);
  assert.equal(parseEventId('hb-0123'), null);
  assert.throws(() => compareEventIds('x', '1-0'), TypeError);
});

test('the SSE parser handles CR, CRLF, LF, comments, multi-line data and split chunks', () => {
  const p = new SSEParser();
  const text = ': ping\r\ndata: {"a":1}\r\n\r\nid: 1-0\ndata: line1\ndata: line2\n\n: c\rdata:x\r\rdata: tail';
  const items = [];
  for (const ch of text) items.push(...p.push(ch));
  assert.deepEqual(items, [
    { comment: true, data: ' ping' },
    { comment: false, data: '{"a":1}' },
    { comment: false, data: 'line1\nline2' },
    { comment: true, data: ' c' },
    { comment: false, data: 'x' },
  ]);
  assert.deepEqual(p.push('\n\n'), [{ comment: false, data: 'tail' }]);
});

test('isTaskEvent accepts envelopes and rejects heartbeats and garbage', () => {
  assert.ok(isTaskEvent({ type: 'TASK_STARTED', taskId: 't', eventId: '1-0', createdAt: 'x', payload: {} }));
  assert.ok(!isTaskEvent({ type: 'HEARTBEAT', taskId: 't', eventId: 'hb-1', createdAt: 'x', payload: { live: true } }));
  assert.ok(!isTaskEvent({ type: 'TASK_STARTED', taskId: 't', eventId: 'nope', createdAt: 'x', payload: {} }));
  assert.ok(!isTaskEvent(null));
});

test('client options are checked', () => {
  assert.throws(() => new TaskBridgeClient({}), /baseUrl is required/);
  assert.throws(() => new TaskBridgeClient({ baseUrl: 'ftp://x' }), /want http/);
  assert.throws(() => new TaskBridgeClient({ baseUrl: 'http://x', pollWaitMs: 61_000 }), RangeError);
  assert.throws(() => new TaskBridgeClient({ baseUrl: 'http://x', retries: 0 }), RangeError);
  const c = new TaskBridgeClient({ baseUrl: 'https://api.example/prefix/', routes: { pollEvents: '/p/7/tasks/:taskId/events' } });
  assert.equal(c.url('pollEvents', 'a/b', { afterEventId: '1-0', x: undefined }), 'https://api.example/prefix/p/7/tasks/a%2Fb/events?afterEventId=1-0');
  assert.equal(c.url('webSocket'), 'https://api.example/prefix/api/v1/tasks/ws');
});
