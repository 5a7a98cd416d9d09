// TaskBridge quickstart demo page: a small TaskBridge v1 browser client.
//
// It creates a demo task, then follows its events over a transport chain
// (WebSocket, then SSE, then long-poll), resuming every connection from the
// last eventId it rendered and dropping any event it has already seen, so
// the log shows each event once, in order, whatever the transports do.
// Plain JavaScript, no build step; state is mirrored into data-* attributes
// of #app so tests (and curious people) can read it.
'use strict';

(() => {
  const API = '/api/v1/tasks';
  const CHAIN = ['ws', 'sse', 'poll'];
  const NAMES = { ws: 'WebSocket', sse: 'SSE', poll: 'long-poll' };
  const TERMINAL = new Set(['TASK_COMPLETED', 'TASK_FAILED', 'TASK_CANCELLED']);
  const DROP_RECONNECT_MS = 500; // pause after "drop connection", so missed events pile up and get replayed
  const POLL_WAIT_MS = 25000;
  const MAX_FAILURES = 8;

  const $ = (id) => document.getElementById(id);
  const app = $('app');
  const params = new URLSearchParams(location.search);
  let pinned = CHAIN.includes(params.get('transport')) ? params.get('transport') : null;

  // task is the task the page follows; everything async checks it is still
  // current before touching the page.
  let task = null;

  // ---------------------------------------------------------------- helpers

  function newId() {
    if (typeof crypto.randomUUID === 'function') {
      try { return crypto.randomUUID(); } catch (_) { /* insecure context: fall through */ }
    }
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // parseId reads the store's "ms-seq" event id; null when the id has
  // another shape (then only the seen-set de-duplicates).
  function parseId(id) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(id);
    return m ? [BigInt(m[1]), BigInt(m[2] || '0')] : null;
  }

  // compareIds orders two event ids the way the store does (never as plain
  // strings: "10" > "9"); NaN when either id is not of the ms-seq shape.
  function compareIds(a, b) {
    const x = parseId(a);
    const y = parseId(b);
    if (!x || !y) return NaN;
    if (x[0] !== y[0]) return x[0] < y[0] ? -1 : 1;
    if (x[1] !== y[1]) return x[1] < y[1] ? -1 : 1;
    return 0;
  }

  function clock(d) {
    const p = (n, w = 2) => String(n).padStart(w, '0');
    return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
  }

  function eventTime(ev) {
    const d = new Date(ev.createdAt);
    return Number.isNaN(d.getTime()) ? String(ev.createdAt) : clock(d);
  }

  function authHeaders(user) {
    return user ? { Authorization: `Bearer ${user}` } : {};
  }

  // api calls a JSON route and returns {status, ok, body}; a network
  // failure becomes a NETWORK_ERROR pseudo-envelope.
  async function api(method, path, user, body, signal) {
    const init = { method, headers: authHeaders(user), signal };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (err) {
      if (err && err.name === 'AbortError') throw err;
      return { status: 0, ok: false, body: { code: 'NETWORK_ERROR', message: `the server could not be reached (${err && err.message})` } };
    }
    let parsed = null;
    const text = await res.text();
    if (text) {
      try { parsed = JSON.parse(text); } catch (_) { parsed = { code: `HTTP_${res.status}`, message: text.slice(0, 200) }; }
    }
    return { status: res.status, ok: res.ok, body: parsed };
  }

  function envelopeOf(res) {
    const b = res.body || {};
    return { code: b.code || `HTTP_${res.status}`, message: b.message || 'request failed', details: b.details, status: res.status };
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

  // ---------------------------------------------------------------- transports
  //
  // Each transport opens one connection from t.cursor and reports through
  // cb: established(info) once it is subscribed, event(ev) per task event,
  // heartbeat(), and end(info) exactly once (info.fatal holds an error
  // envelope when retrying cannot help). close() ends it and reports end.

  function wsTransport(t, cb) {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}${API}/ws?access_token=${encodeURIComponent(t.user)}`);
    let done = false;
    const end = (info) => { if (!done) { done = true; cb.end(info); } };
    ws.onopen = () => {
      const frame = { action: 'subscribe', taskId: t.id };
      if (t.cursor) frame.lastEventId = t.cursor;
      ws.send(JSON.stringify(frame));
    };
    ws.onmessage = (msg) => {
      let f;
      try { f = JSON.parse(msg.data); } catch (_) { return; }
      if (f.type === 'SUBSCRIPTION_CONFIRMED') {
        cb.established({ after: f.replayStartedAfterEventId, retentionGap: !!f.retentionGap });
      } else if (f.type === 'HEARTBEAT') {
        cb.heartbeat();
      } else if (f.eventId) {
        cb.event(f);
      }
    };
    ws.onclose = (e) => {
      const info = { detail: `close ${e.code}${e.reason ? ` ${e.reason}` : ''}` };
      if (e.code === 1008) info.policy = e.reason || 'POLICY_VIOLATION';
      end(info);
    };
    return {
      close() {
        try { ws.close(4000, 'closed by the page'); } catch (_) { /* already closed */ }
        end({ detail: 'closed by the page' });
      },
    };
  }

  function sseTransport(t, cb) {
    let url = `${API}/${encodeURIComponent(t.id)}/events/stream?access_token=${encodeURIComponent(t.user)}`;
    if (t.cursor) url += `&lastEventId=${encodeURIComponent(t.cursor)}`;
    const es = new EventSource(url);
    let done = false;
    const end = (info) => {
      if (done) return;
      done = true;
      es.close(); // the page reconnects by itself, with its own cursor
      cb.end(info);
    };
    es.onopen = () => cb.established({});
    es.onmessage = (msg) => {
      let f;
      try { f = JSON.parse(msg.data); } catch (_) { return; }
      if (f.type === 'HEARTBEAT') cb.heartbeat();
      else if (f.eventId) cb.event(f);
    };
    es.onerror = () => end({ detail: 'stream ended' });
    return { close() { end({ detail: 'closed by the page' }); } };
  }

  function pollTransport(t, cb) {
    const ac = new AbortController();
    let done = false;
    const end = (info) => { if (!done) { done = true; cb.end(info); } };
    (async () => {
      let cursor = t.cursor;
      let established = false;
      while (!done) {
        const q = new URLSearchParams({ waitTimeoutMs: String(POLL_WAIT_MS), maxEvents: '100' });
        if (cursor) q.set('afterEventId', cursor);
        const res = await api('GET', `${API}/${encodeURIComponent(t.id)}/events?${q}`, t.user, undefined, ac.signal);
        if (done) return;
        if (!res.ok) {
          const env = envelopeOf(res);
          end(res.status >= 400 && res.status < 500 ? { fatal: env, detail: env.code } : { detail: env.code });
          return;
        }
        if (!established) {
          established = true;
          cb.established({ after: cursor, retentionGap: !!res.body.retentionGap });
        }
        for (const ev of res.body.events || []) {
          if (done) return;
          cb.event(ev);
        }
        if (res.body.nextAfterEventId) cursor = res.body.nextAfterEventId;
      }
    })().catch((err) => end({ detail: err && err.name === 'AbortError' ? 'aborted' : String(err) }));
    return {
      close() {
        end({ detail: 'closed by the page' });
        ac.abort();
      },
    };
  }

  const TRANSPORTS = { ws: wsTransport, sse: sseTransport, poll: pollTransport };

  // ---------------------------------------------------------------- connection manager

  function connect(t) {
    if (t !== task || t.terminal || t.stopped) return;
    t.timer = null;
    const kind = pinned || CHAIN[t.chainIndex];
    const conn = { id: ++t.connSeq, kind, established: false, dropped: false, ended: false, rendered: false, handle: null };
    t.conn = conn;
    updateCounters(t);
    setTransport(kind);
    setConnState('connecting', `connecting (#${conn.id})`);
    note('connect', `${NAMES[kind]} #${conn.id}: connecting, resuming after ${t.cursor || 'the start'}`);
    conn.handle = TRANSPORTS[kind](t, {
      established(info) {
        if (t !== task || t.conn !== conn) return;
        conn.established = true;
        t.failures = 0;
        setConnState('live', `live (#${conn.id})`);
        note('live', `${NAMES[kind]} #${conn.id}: subscribed${info.after ? `, replaying after ${info.after}` : ''}`);
        if (info.retentionGap) note('error', 'the server no longer holds events right after the cursor (retention gap)');
      },
      event(ev) { onEvent(t, conn, ev); },
      heartbeat() {
        if (t !== task || t.conn !== conn) return;
        t.heartbeats += 1;
        setData('heartbeats', t.heartbeats);
        $('conn-state').title = `last heartbeat ${clock(new Date())}`;
      },
      end(info) { onEnd(t, conn, info); },
    });
  }

  function onEvent(t, conn, ev) {
    // Late frames of a connection the page already left are ignored: the
    // next connection resumes from the cursor anyway.
    if (t !== task || t.conn !== conn || t.terminal) return;
    if (!ev || typeof ev.eventId !== 'string' || ev.taskId !== t.id) return;
    if (t.seen.has(ev.eventId) || (t.cursor && compareIds(ev.eventId, t.cursor) <= 0)) {
      t.dups += 1;
      updateCounters(t);
      return;
    }
    t.seen.add(ev.eventId);
    t.cursor = ev.eventId;
    t.count += 1;
    renderRow(t, conn, ev);
    apply(t, ev);
    updateCounters(t);
    if (TERMINAL.has(ev.type)) finish(t, conn);
  }

  // finish runs once the terminal event is rendered: close the connection
  // (SSE would otherwise reconnect) and mark the page done.
  function finish(t, conn) {
    t.terminal = true;
    t.conn = null;
    conn.handle.close();
    hideSuspension();
    setConnState('closed', 'closed after the terminal event');
    note('done', `${NAMES[conn.kind]} #${conn.id}: terminal event received, connection closed`);
    $('start').disabled = false;
    setData('terminal', 'true');
  }

  function schedule(t, ms) {
    clearTimeout(t.timer);
    t.timer = setTimeout(() => connect(t), ms);
  }

  function backoff(n) { return Math.min(250 * 2 ** n, 5000); }

  // stopTask gives up on t with an error the user can read.
  function stopTask(t, env) {
    t.stopped = true;
    showError(env);
    setConnState('stopped', 'stopped');
    note('error', `stopped: ${env.code} ${env.message}`);
    $('start').disabled = false;
    setData('stopped', 'true');
  }

  // probe asks the long-poll route, without waiting, why a stream failed
  // before it was established: browsers hide the status of a refused
  // WebSocket or EventSource. A 4xx envelope (auth, not found) is final.
  async function probe(t) {
    const q = new URLSearchParams({ waitTimeoutMs: '0', maxEvents: '1' });
    if (t.cursor) q.set('afterEventId', t.cursor);
    const res = await api('GET', `${API}/${encodeURIComponent(t.id)}/events?${q}`, t.user);
    return res.status >= 400 && res.status < 500 ? envelopeOf(res) : null;
  }

  async function onEnd(t, conn, info) {
    if (conn.ended) return;
    conn.ended = true;
    if (t !== task || t.conn !== conn || t.terminal || t.stopped) return;
    t.conn = null;
    const name = `${NAMES[conn.kind]} #${conn.id}`;
    if (conn.dropped) {
      setConnState('reconnecting', 'reconnecting');
      note('drop', `${name}: dropped by you; reconnecting in ${DROP_RECONNECT_MS} ms from ${t.cursor || 'the start'}`);
      schedule(t, DROP_RECONNECT_MS);
      return;
    }
    if (info.fatal) { stopTask(t, info.fatal); return; }
    if (info.policy) {
      const env = await probe(t);
      if (t !== task || t.stopped) return;
      stopTask(t, env || { code: info.policy, message: `${name} was closed by the server (1008)` });
      return;
    }
    if (conn.established) {
      const wait = backoff(t.failures++);
      setConnState('reconnecting', 'reconnecting');
      note('drop', `${name}: ${info.detail}; reconnecting in ${wait} ms`);
      schedule(t, wait);
      return;
    }
    // It never got going: find out why before falling back.
    const env = await probe(t);
    if (t !== task || t.stopped || t.terminal) return;
    if (env) { stopTask(t, env); return; }
    if (!pinned && t.chainIndex < CHAIN.length - 1) {
      t.chainIndex += 1;
      note('fallback', `${name}: could not connect (${info.detail}); falling back to ${NAMES[CHAIN[t.chainIndex]]}`);
      connect(t);
      return;
    }
    t.failures += 1;
    if (t.failures > MAX_FAILURES) {
      stopTask(t, { code: 'UNREACHABLE', message: `${NAMES[conn.kind]} failed ${t.failures} times in a row` });
      return;
    }
    const wait = backoff(t.failures);
    setConnState('reconnecting', 'reconnecting');
    note('fallback', `${name}: could not connect (${info.detail}); retrying in ${wait} ms`);
    schedule(t, wait);
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
      `POST ${API}\n${user ? `Authorization: Bearer ${user}` : '(no Authorization header: expect 401)'}\n${body}`;
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
    clearTimeout(t.timer);
    const c = t.conn;
    t.conn = null;
    if (c) c.handle.close();
  }

  async function start(e) {
    e.preventDefault();
    abandon(task);
    task = null;
    resetView();
    const user = $('user').value.trim();
    const body = requestBody(newId());
    $('start').disabled = true;
    note('create', `POST ${API} ${body.taskType} (clientRequestId ${body.clientRequestId})`);
    const res = await api('POST', API, user, body);
    if (!res.ok) {
      $('start').disabled = false;
      showError(envelopeOf(res));
      setData('stopped', 'true');
      note('error', `create failed: ${envelopeOf(res).code}`);
      return;
    }
    const t = {
      id: res.body.taskId, user, cursor: null, seen: new Set(), count: 0, dups: 0, drops: 0,
      heartbeats: 0, connSeq: 0, chainIndex: 0, failures: 0, conn: null, timer: null,
      terminal: false, stopped: false, suspendId: null,
    };
    task = t;
    $('task-id').textContent = t.id;
    setData('taskId', t.id);
    setStatus(res.body.status || 'ACCEPTED');
    updateCounters(t);
    $('start').disabled = false;
    connect(t);
  }

  function drop() {
    const t = task;
    if (!t || !t.conn || t.terminal || t.stopped) return;
    const c = t.conn;
    c.dropped = true;
    t.drops += 1;
    updateCounters(t);
    c.handle.close();
  }

  async function cancel() {
    const t = task;
    if (!t || t.terminal || t.stopped) return;
    $('cancel').disabled = true;
    const res = await api('POST', `${API}/${encodeURIComponent(t.id)}/cancel`, t.user);
    if (t !== task) return;
    if (!res.ok) {
      showError(envelopeOf(res));
      refreshControls();
      return;
    }
    showNotice(`cancel: ${res.body.status}`);
    setData('cancelStatus', res.body.status);
  }

  async function submitAction(t, suspendId, actionType) {
    if (t !== task) return;
    for (const b of $('actions').querySelectorAll('button')) b.disabled = true;
    const res = await api('POST', `${API}/${encodeURIComponent(t.id)}/actions`, t.user,
      { clientActionId: newId(), suspendId, actionType });
    if (t !== task) return;
    if (!res.ok) {
      showError(envelopeOf(res));
      for (const b of $('actions').querySelectorAll('button')) b.disabled = false;
      return;
    }
    setData('actionStatus', res.body.status);
    showNotice(`${actionType}: ${res.body.status}`);
    if (res.body.status !== 'ACCEPTED' && res.body.status !== 'DEDUPLICATED') {
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
})();
