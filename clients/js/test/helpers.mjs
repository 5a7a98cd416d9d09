// Test support: the running quickstart (BASE_URL, started by
// scripts/run-tests.mjs), clients, and proxy stand-ins on loopback ports.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { TaskBridgeClient } from '../dist/index.js';

export const BASE = process.env.BASE_URL;
assert.ok(BASE, 'BASE_URL must point at a running quickstart (npm test starts one)');
export const TARGET = new URL(BASE).host;
export const WAIT = 20_000;

let seq = 0;
/** user returns a fresh user name (the quickstart's token is the subject). */
export function user(name) { seq += 1; return `js-${name}-${process.pid}-${seq}`; }

/** client returns a client of base (default: the quickstart) for token, with test-friendly timings. */
export function client(token, opts = {}) {
  return new TaskBridgeClient({
    baseUrl: BASE, token, streamTickets: true, backoffMinMs: 10, backoffMaxMs: 200, ...opts,
  });
}

/** collect runs a watch to its end: its events and the error it ended with. */
export async function collect(watch) {
  const events = [];
  try {
    for await (const ev of watch) events.push(ev);
    return { events, error: undefined };
  } catch (error) {
    return { events, error };
  }
}

/** serverEvents reads a task's whole log from the long-poll route. */
export async function serverEvents(token, taskId) {
  const res = await fetch(`${BASE}/api/v1/tasks/${encodeURIComponent(taskId)}/events?maxEvents=500`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  assert.equal(res.status, 200);
  return (await res.json()).events;
}

/** waitFor polls cond until it holds (or fails after WAIT). */
export async function waitFor(cond, what) {
  const deadline = Date.now() + WAIT;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * tcpProxy forwards loopback connections to the quickstart. cut() closes the
 * open ones; freeze() makes them swallow everything without closing, as a
 * dead network path does.
 */
export async function tcpProxy(t) {
  const conns = new Set();
  const server = net.createServer((c) => {
    const up = net.connect(Number(TARGET.split(':')[1]), TARGET.split(':')[0]);
    const pair = { c, up, frozen: false };
    conns.add(pair);
    const end = () => { c.destroy(); up.destroy(); conns.delete(pair); };
    c.on('data', (d) => { if (!pair.frozen) up.write(d); });
    up.on('data', (d) => { if (!pair.frozen) c.write(d); });
    c.on('close', end); up.on('close', end); c.on('error', end); up.on('error', end);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => { for (const p of conns) { p.c.destroy(); p.up.destroy(); } server.close(r); }));
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    cut() { const n = conns.size; for (const p of [...conns]) { p.c.destroy(); p.up.destroy(); } return n; },
    freeze() { for (const p of conns) p.frozen = true; return conns.size; },
    get open() { return conns.size; },
  };
}

/**
 * httpProxy is a reverse-proxy stand-in: it refuses WebSocket upgrades (502)
 * and, with bufferSSE, holds SSE bodies until the upstream response ends.
 */
export async function httpProxy(t, { bufferSSE }) {
  const agent = new http.Agent({ keepAlive: false });
  const server = http.createServer((req, res) => {
    const up = http.request({ host: TARGET.split(':')[0], port: Number(TARGET.split(':')[1]), path: req.url, method: req.method, headers: req.headers, agent }, (ur) => {
      const sse = (ur.headers['content-type'] ?? '').startsWith('text/event-stream');
      res.writeHead(ur.statusCode, ur.headers);
      if (sse && bufferSSE) {
        res.flushHeaders();
        const chunks = [];
        ur.on('data', (d) => chunks.push(d));
        ur.on('end', () => res.end(Buffer.concat(chunks)));
        ur.on('error', () => res.destroy());
        return;
      }
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  server.on('upgrade', (req, socket) => {
    const body = '<html>no upgrades</html>';
    socket.end(`HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise((r) => { server.closeAllConnections(); server.close(r); agent.destroy(); }));
  return { base: `http://127.0.0.1:${server.address().port}` };
}
