// npm test: builds the quickstart example with the go command, starts it on
// a free loopback port with short heartbeats and a stream limit of 3 per
// user, runs the Node tests (test/*.test.mjs) against it with BASE_URL set,
// and stops it. Node 20 gets its WebSocket with --experimental-websocket
// (Node 22 has one by default). Arguments go to node's test runner.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const pkg = path.join(here, '..');
const root = path.join(pkg, '..', '..');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'taskbridge-js-'));
const bin = path.join(tmp, 'quickstart');
execFileSync('go', ['build', '-o', bin, './_examples/quickstart'], { cwd: root, stdio: 'inherit' });

const server = spawn(bin, ['-addr', '127.0.0.1:0', '-heartbeat', '500ms', '-max-streams', '3'], { stdio: ['ignore', 'ignore', 'pipe'] });
const stop = () => { if (server.exitCode === null) server.kill('SIGTERM'); rmSync(tmp, { recursive: true, force: true }); };
process.on('exit', stop);
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

const addr = await new Promise((resolve, reject) => {
  let log = '';
  const timer = setTimeout(() => reject(new Error(`the quickstart did not report its address:\n${log}`)), 30_000);
  server.stderr.setEncoding('utf8');
  server.stderr.on('data', (chunk) => {
    log += chunk;
    const m = /"msg":"quickstart listening".*?"addr":"([^"]+)"/.exec(log);
    if (m) { clearTimeout(timer); resolve(m[1]); }
  });
  server.on('exit', (code) => reject(new Error(`the quickstart exited (${code}):\n${log}`)));
});
server.stderr.resume();

const major = Number(process.versions.node.split('.')[0]);
const flags = major < 22 ? ['--experimental-websocket'] : [];
const files = readdirSync(path.join(pkg, 'test')).filter((f) => f.endsWith('.test.mjs')).map((f) => path.join('test', f));
const child = spawn(process.execPath, [...flags, '--test', '--test-reporter=spec', ...process.argv.slice(2), ...files], {
  cwd: pkg, stdio: 'inherit', env: { ...process.env, BASE_URL: `http://${addr}` },
});
const code = await new Promise((resolve) => child.on('exit', (c, sig) => resolve(c ?? (sig ? 1 : 0))));
stop();
process.exit(code);
