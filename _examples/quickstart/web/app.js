// TaskBridge quickstart demo page, built on the TaskBridge TypeScript client
// (clients/js, served from /demo/taskbridge/): the client creates the demo
// task and watches its events over its transport chain (WebSocket, then
// SSE, then long-poll), resuming every connection after the last event it
// delivered and dropping repeats; streams authenticate with single-use
// stream tickets, never with the token in a URL. This file only renders.
// State is mirrored into data-* attributes of #app so tests (and curious
// people) can read it.
import { TaskBridgeClient, TaskBridgeError, newId } from './taskbridge/index.js';

const CHAIN = ['ws', 'sse', 'poll'];
const NAMES = { ws: 'WebSocket', sse: 'SSE', poll: 'long-poll' };
const TERMINAL = new Set(['TASK_COMPLETED', 'TASK_FAILED', 'TASK_CANCELLED']);
const DROP_RECONNECT_MS = 500; // pause after "drop connection", so missed events pile up and get replayed
const MAX_FAILURES = 8; // connects in a row without a working connection before the page gives up

const $ = (id) => document.getElementById(id);
const app = $('app');
const params = new URLSearchParams(location.search);
let pinned = CHAIN.includes(params.get('transport')) ? params.get('transport') : null;

// task is the task the page follows; everything async checks it is still
// current before touching the page.
let task = null;

// ---------------------------------------------------------------- helpers

function clock(d) {
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function eventTime(ev) {
  const d = new Date(ev.createdAt);
  return Number.isNaN(d.getTime()) ? String(ev.createdAt) : clock(d);
}

// newClient returns a client for user: the token authenticates the fetch
// requests and asks for stream tickets; the pinned transport, if any, is
// the whole chain.
function newClient(user) {
  return new TaskBridgeClient({ token: user || undefined, streamTickets: true, transports: pinned ? [pinned] : CHAIN });
}

// envelopeOf turns a failure into what showError displays.
function envelopeOf(err) {
  if (err instanceof TaskBridgeError) {
    return { code: err.code || `HTTP_${err.status}`, message: err.message.replace(/^taskbridge: \d+ [A-Z_]*:? ?/, ''), details: err.details, status: err.status };
  }
  return { code: 'NETWORK_ERROR', message: `the server could not be reached (${err && err.message})` };
}

// ---------------------------------------------------------------- rendering

function setData(key, value) { app.dataset[key] = String(value); }

function note(kind, text) {
  const li = document.createElement('li');
  li.dataset.kind = kind;
  const time = document.createElement('time');
  time.textContent = clock(new Date());
  li.append(time, text);
  const list = $('conn-log');
  list.append(li);
  list.scrollTop = list.scrollHeight;
}

function showError(env) {
  const box = $('error');
  box.dataset.code = env.code;
  $('error-code').textContent = env.code;
  let msg = env.message;
  if (env.details && Object.keys(env.details).length) msg += ` ${JSON.stringify(env.details)}`;
  if (env.status) msg += ` (HTTP ${env.status})`;
  $('error-message').textContent = msg;
  box.hidden = false;
}

function clearError() {
  $('error').hidden = true;
  $('error').dataset.code = '';
}

function showNotice(text) {
  const n = $('notice');
  n.textContent = text;
  n.hidden = !text;
}

function setStatus(status) {
  setData('status', status);
  const badge = $('task-status');
  badge.dataset.status = status;
  badge.textContent = status.toLowerCase();
}

function setTransport(kind) {
  setData('transport', kind);
  const b = $('transport');
  b.dataset.transport = kind;
  b.textContent = kind ? `${NAMES[kind]}${pinned ? ' (pinned)' : ''}` : '–';
}

function setConnState(state, text) {
  setData('connState', state);
  const el = $('conn-state');
  el.dataset.state = state;
  el.textContent = text || state;
  refreshControls();
}

function setProgress(pct) {
  const v = Math.max(0, Math.min(100, Number(pct) || 0));
  $('progress-bar').style.width = `${v}%`;
  $('progress-value').textContent = `${Math.round(v * 10) / 10}%`;
  setData('progress', v);
}

function refreshControls() {
  const t = task;
  const active = !!(t && !t.terminal && !t.stopped);
  $('drop').disabled = !(active && t.conn);
  $('cancel').disabled = !active;
}

function updateCounters(t) {
  setData('eventCount', t.count);
  setData('duplicates', t.dups);
  setData('drops', t.drops);
  setData('connections', t.connSeq);
  $('event-count').textContent = t.count;
  $('duplicate-count').textContent = t.dups;
  $('drop-count').textContent = t.drops;
  $('cursor').textContent = t.cursor || '–';
  setData('cursor', t.cursor || '');
}

function renderRow(t, conn, ev) {
  const body = $('log-body');
  const empty = body.querySelector('tr.empty');
  if (empty) empty.remove();
  const tr = document.createElement('tr');
  tr.className = 'fresh';
  if (conn.id > 1 && !conn.rendered) tr.classList.add('resumed');
  conn.rendered = true;
  tr.dataset.eventId = ev.eventId;
  tr.dataset.type = ev.type;
  tr.dataset.conn = String(conn.id);
  tr.dataset.via = conn.kind;
  const cell = (cls, child) => {
    const td = document.createElement('td');
    if (cls) td.className = cls;
    td.append(child);
    return td;
  };
  const type = document.createElement('span');
  type.className = 'type';
  type.dataset.type = ev.type;
  type.textContent = ev.type;
  const payload = document.createElement('code');
  payload.textContent = JSON.stringify(ev.payload);
  tr.append(
    cell('time', eventTime(ev)),
    cell('', type),
    cell('event-id', ev.eventId),
    cell('via', `${conn.kind} #${conn.id}`),
    cell('payload', payload),
  );
  const wrap = body.closest('.table-wrap');
  const atBottom = wrap.scrollHeight - wrap.scrollTop - wrap.clientHeight < 40;
  body.append(tr);
  if (atBottom) wrap.scrollTop = wrap.scrollHeight;
}

function showSuspension(t, p) {
  t.suspendId = p.suspendId;
  const reason = [p.kind, p.reasonCode].filter(Boolean).join(' · ');
  const question = p.interaction && p.interaction.question ? ` — ${p.interaction.question}` : '';
  $('suspension-reason').textContent = reason + question;
  const box = $('actions');
  box.replaceChildren();
  for (const action of p.allowedActions || []) {
    const b = document.createElement('button');
    b.type = 'button';
    b.dataset.action = action;
    b.id = `action-${action}`;
    b.className = action === 'approve' ? 'approve' : action === 'reject' ? 'reject' : '';
    b.textContent = action;
    b.addEventListener('click', () => submitAction(t, p.suspendId, action));
    box.append(b);
  }
  $('suspension').hidden = false;
}

function hideSuspension() {
  $('suspension').hidden = true;
  $('actions').replaceChildren();
}

function showResult(outcome, title, body, code) {
  const box = $('result');
  box.dataset.outcome = outcome;
  box.dataset.code = code || '';
  $('result-title').textContent = title;
  $('result-body').textContent = body;
  box.hidden = false;
}

// apply folds one new event into the task view.
function apply(t, ev) {
  const p = ev.payload || {};
  switch (ev.type) {
    case 'TASK_STARTED':
      setStatus('RUNNING');
      $('stage').textContent = 'started';
      $('stage-message').textContent = p.message || '';
      break;
    case 'TASK_PROGRESS':
      setStatus('RUNNING');
      setProgress(p.progress);
      $('stage').textContent = p.stage || '';
      $('stage-message').textContent = p.message || '';
      break;
    case 'TASK_MESSAGE':
      $('stage-message').textContent = p.message || '';
      break;
    case 'TASK_SUSPENDED':
      setStatus('SUSPENDED');
      $('stage').textContent = 'suspended';
      $('stage-message').textContent = p.reasonCode || '';
      showSuspension(t, p);
      break;
    case 'TASK_ACTION_ACCEPTED':
      setStatus('RUNNING');
      hideSuspension();
      $('stage').textContent = `${p.actionType} accepted`;
      $('stage-message').textContent = '';
      break;
    case 'TASK_COMPLETED':
      setStatus('COMPLETED');
      setProgress(100);
      $('stage').textContent = 'completed';
      $('stage-message').textContent = '';
      showResult('completed', 'Result', JSON.stringify(p.result, null, 2));
      break;
    case 'TASK_FAILED':
      setStatus('FAILED');
      $('stage').textContent = 'failed';
      $('stage-message').textContent = '';
      showResult('failed', `Failed · ${p.code}`, `${p.message}\nretryable: ${p.retryable}`, p.code);
      break;
    case 'TASK_CANCELLED':
      setStatus('CANCELLED');
      $('stage').textContent = 'cancelled';
      $('stage-message').textContent = '';
      showResult('cancelled', 'Cancelled', [p.reason, p.message].filter(Boolean).join('\n'));
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------- watching

// follow watches t's events with the client until the task ends, the
// watch fails for good, or the page moves on.
async function follow(t) {
  const w = t.client.watch(t.id, { onStatus: (s) => onStatus(t, s) });
  t.watch = w;
  try {
    for await (const ev of w) {
      if (t !== task) return;
      onEvent(t, w, ev);
    }
  } catch (err) {
    if (t !== task || t.stopped) return;
    stopTask(t, envelopeOf(err));
  }
}

function onStatus(t, s) {
  if (t !== task || t.terminal || t.stopped) return;
  switch (s.type) {
    case 'connecting':
      t.conn = { id: s.connection, kind: s.transport, rendered: false };
      t.connSeq = s.connection;
      updateCounters(t);
      setTransport(s.transport);
      setConnState('connecting', `connecting (#${s.connection})`);
      note('connect', `${NAMES[s.transport]} #${s.connection}: connecting, resuming after ${s.after || 'the start'}`);
      break;
    case 'open':
      t.failures = 0;
      setConnState('live', `live (#${s.connection})`);
      note('live', `${NAMES[s.transport]} #${s.connection}: subscribed${s.after ? `, replaying after ${s.after}` : ''}`);
      if (s.retentionGap) note('error', 'the server no longer holds events right after the cursor (retention gap)');
      break;
    case 'heartbeat':
      t.heartbeats += 1;
      setData('heartbeats', t.heartbeats);
      $('conn-state').title = `last heartbeat ${clock(new Date())}`;
      break;
    case 'duplicate':
      t.dups += 1;
      updateCounters(t);
      break;
    case 'closed': {
      const name = `${NAMES[s.transport]} #${s.connection}`;
      if (s.dropped) {
        setConnState('reconnecting', 'reconnecting');
        note('drop', `${name}: dropped by you; reconnecting in ${s.retryInMs} ms from ${t.cursor || 'the start'}`);
        break;
      }
      if (s.retryInMs === 0) break; // a fallback follows
      t.failures += 1;
      if (t.failures > MAX_FAILURES) {
        stopTask(t, { code: 'UNREACHABLE', message: `${t.failures} connections in a row failed (${s.reason})` });
        t.watch.close();
        break;
      }
      setConnState('reconnecting', 'reconnecting');
      note('drop', `${name}: ${s.reason}; reconnecting in ${s.retryInMs} ms`);
      break;
    }
    case 'fallback':
      note('fallback', `${NAMES[s.from]}: could not connect (${s.reason}); falling back to ${NAMES[s.to]}`);
      break;
    default:
      break;
  }
}

function onEvent(t, w, ev) {
  const via = w.deliveredBy(ev) || { transport: t.conn.kind, connection: t.conn.id };
  t.cursor = ev.eventId;
  t.count += 1;
  const conn = t.conn && t.conn.id === via.connection ? t.conn : { id: via.connection, kind: via.transport, rendered: true };
  renderRow(t, conn, ev);
  apply(t, ev);
  updateCounters(t);
  if (TERMINAL.has(ev.type)) finish(t, conn);
}

// finish runs once the terminal event is rendered: the watch has closed
// its connection; mark the page done.
function finish(t, conn) {
  t.terminal = true;
  t.conn = null;
  hideSuspension();
  setConnState('closed', 'closed after the terminal event');
  note('done', `${NAMES[conn.kind]} #${conn.id}: terminal event received, connection closed`);
  $('start').disabled = false;
  setData('terminal', 'true');
}

// stopTask gives up on t with an error the user can read.
function stopTask(t, env) {
  t.stopped = true;
  showError(env);
  setConnState('stopped', 'stopped');
  note('error', `stopped: ${env.code} ${env.message}`);
  $('start').disabled = false;
  setData('stopped', 'true');
}

// ---------------------------------------------------------------- actions

function readInput(type) {
  const num = (id) => {
    const raw = $(id).value.trim();
    return raw === '' ? undefined : Number(raw);
  };
  const input = {};
  if (type === 'demo.progress') {
    input.steps = num('input-steps');
    input.delayMs = num('input-delay');
  } else if (type === 'demo.sleep') {
    input.delayMs = num('input-delay');
  }
  for (const k of Object.keys(input)) if (input[k] === undefined) delete input[k];
  return input;
}

function requestBody(clientRequestId) {
  const taskType = $('task-type').value;
  return { clientRequestId, taskType, input: readInput(taskType) };
}

function refreshForm() {
  const type = $('task-type').value;
  $('field-steps').hidden = type !== 'demo.progress';
  $('field-delay').hidden = !(type === 'demo.progress' || type === 'demo.sleep');
  const user = $('user').value.trim();
  const req = requestBody('<new uuid>');
  const body = `{\n  "clientRequestId": ${JSON.stringify(req.clientRequestId)},\n` +
    `  "taskType": ${JSON.stringify(req.taskType)},\n  "input": ${JSON.stringify(req.input)}\n}`;
  $('request-preview').textContent =
    `POST /api/v1/tasks\n${user ? `Authorization: Bearer ${user}` : '(no Authorization header: expect 401)'}\n${body}`;
}

function resetView() {
  clearError();
  showNotice('');
  hideSuspension();
  $('result').hidden = true;
  $('result').dataset.outcome = '';
  $('log-body').replaceChildren();
  $('conn-log').replaceChildren();
  $('task-id').textContent = '–';
  $('stage').textContent = '';
  $('stage-message').textContent = '';
  setProgress(0);
  setTransport('');
  setStatus('IDLE');
  setConnState('idle', 'not connected');
  for (const k of ['terminal', 'stopped']) setData(k, 'false');
  setData('taskId', '');
  setData('heartbeats', 0);
  updateCounters({ count: 0, dups: 0, drops: 0, connSeq: 0, cursor: null });
}

function abandon(t) {
  if (!t) return;
  t.stopped = true;
  t.conn = null;
  if (t.watch) t.watch.close();
}

async function start(e) {
  e.preventDefault();
  abandon(task);
  task = null;
  resetView();
  const user = $('user').value.trim();
  const body = requestBody(newId());
  const client = newClient(user);
  $('start').disabled = true;
  note('create', `POST ${client.routes.createTask} ${body.taskType} (clientRequestId ${body.clientRequestId})`);
  let created;
  try {
    created = await client.create(body);
  } catch (err) {
    const env = envelopeOf(err);
    $('start').disabled = false;
    showError(env);
    setData('stopped', 'true');
    note('error', `create failed: ${env.code}`);
    return;
  }
  const t = {
    id: created.taskId, user, client, watch: null, cursor: null, count: 0, dups: 0, drops: 0,
    heartbeats: 0, connSeq: 0, failures: 0, conn: null, terminal: false, stopped: false, suspendId: null,
  };
  task = t;
  $('task-id').textContent = t.id;
  setData('taskId', t.id);
  setStatus(created.status || 'ACCEPTED');
  updateCounters(t);
  $('start').disabled = false;
  follow(t);
}

function drop() {
  const t = task;
  if (!t || !t.conn || !t.watch || t.terminal || t.stopped) return;
  t.drops += 1;
  updateCounters(t);
  t.watch.drop(DROP_RECONNECT_MS);
}

async function cancel() {
  const t = task;
  if (!t || t.terminal || t.stopped) return;
  $('cancel').disabled = true;
  let res;
  try {
    res = await t.client.cancel(t.id);
  } catch (err) {
    if (t !== task) return;
    showError(envelopeOf(err));
    refreshControls();
    return;
  }
  if (t !== task) return;
  showNotice(`cancel: ${res.status}`);
  setData('cancelStatus', res.status);
}

async function submitAction(t, suspendId, actionType) {
  if (t !== task) return;
  for (const b of $('actions').querySelectorAll('button')) b.disabled = true;
  let res;
  try {
    res = await t.client.act(t.id, { suspendId, actionType });
  } catch (err) {
    if (t !== task) return;
    showError(envelopeOf(err));
    for (const b of $('actions').querySelectorAll('button')) b.disabled = false;
    return;
  }
  if (t !== task) return;
  setData('actionStatus', res.status);
  showNotice(`${actionType}: ${res.status}`);
  if (res.status !== 'ACCEPTED' && res.status !== 'DEDUPLICATED') {
    showError({ code: res.body.status, message: `the ${actionType} action was not accepted` });
  }
}

// ---------------------------------------------------------------- wiring

const select = $('transport-select');
select.value = pinned || 'auto';
select.addEventListener('change', () => {
  pinned = select.value === 'auto' ? null : select.value;
  const q = new URLSearchParams(location.search);
  if (pinned) q.set('transport', pinned); else q.delete('transport');
  const qs = q.toString();
  history.replaceState(null, '', `${location.pathname}${qs ? `?${qs}` : ''}`);
});
$('start-form').addEventListener('submit', start);
$('start-form').addEventListener('input', refreshForm);
$('task-type').addEventListener('change', refreshForm);
$('drop').addEventListener('click', drop);
$('cancel').addEventListener('click', cancel);
window.addEventListener('pagehide', () => abandon(task));
refreshForm();
setData('ready', 'true');
