// The wire types of src/protocol.ts against the protocol's JSON Schemas
// (../shared/protocol beside the repository, or TASKBRIDGE_PROTOCOL_DIR):
// every interface has exactly the schema's properties, optional exactly
// where the schema does not require them, and string unions equal to the
// schema's enums. Read with the TypeScript compiler (the build's only
// dependency). Skipped, saying so, when the reference is absent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = process.env.TASKBRIDGE_PROTOCOL_DIR || path.join(here, '..', '..', '..', '..', 'shared', 'protocol');
const present = existsSync(path.join(dir, 'schemas', 'task_event.schema.json'));
const skip = present ? false : `no protocol reference at ${dir} (set TASKBRIDGE_PROTOCOL_DIR)`;

/** interfaces returns name -> {props: Map(name -> {optional, literals})} of src/protocol.ts. */
function interfaces() {
  const file = path.join(here, '..', 'src', 'protocol.ts');
  const src = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const out = new Map();
  const literals = (t) => {
    if (!t) return null;
    if (ts.isLiteralTypeNode(t) && ts.isStringLiteral(t.literal)) return [t.literal.text];
    if (ts.isUnionTypeNode(t)) {
      const all = t.types.flatMap((x) => literals(x) ?? []);
      return all.length === t.types.length ? all : null;
    }
    return null;
  };
  for (const st of src.statements) {
    if (!ts.isInterfaceDeclaration(st)) continue;
    const props = new Map();
    for (const m of st.members) {
      if (!ts.isPropertySignature(m)) continue;
      props.set(m.name.getText(src), { optional: !!m.questionToken, literals: literals(m.type) });
    }
    out.set(st.name.text, props);
  }
  return out;
}

function check(name, props, schema) {
  assert.ok(props, `interface ${name} is missing`);
  const want = Object.keys(schema.properties ?? {}).sort();
  assert.deepEqual([...props.keys()].sort(), want, `${name}: properties`);
  const required = new Set(schema.required ?? []);
  for (const [prop, p] of props) {
    assert.equal(!p.optional, required.has(prop), `${name}.${prop}: required in the schema ⇔ not optional in TypeScript`);
    const e = schema.properties[prop]?.enum ?? (schema.properties[prop]?.const !== undefined ? [schema.properties[prop].const] : null);
    if (e && p.literals) assert.deepEqual([...p.literals].sort(), [...e].sort(), `${name}.${prop}: values`);
  }
}

const json = (f) => JSON.parse(readFileSync(path.join(dir, 'schemas', f), 'utf8'));

test('event envelope and the eight payloads match task_event.schema.json', { skip }, () => {
  const types = interfaces();
  const schema = json('task_event.schema.json');
  const env = types.get('TaskEventOf');
  check('TaskEventOf', env, schema);
  const byType = {
    TASK_STARTED: 'StartedPayload', TASK_PROGRESS: 'ProgressPayload', TASK_MESSAGE: 'MessagePayload',
    TASK_SUSPENDED: 'SuspendedPayload', TASK_ACTION_ACCEPTED: 'ActionAcceptedPayload', TASK_COMPLETED: 'CompletedPayload',
    TASK_FAILED: 'FailedPayload', TASK_CANCELLED: 'CancelledPayload',
  };
  assert.deepEqual(Object.keys(byType).sort(), [...schema.properties.type.enum].sort());
  assert.deepEqual([...types.get('PayloadByType').keys()].sort(), Object.keys(byType).sort());
  for (const rule of schema.allOf) {
    const t = rule.if.properties.type.const;
    check(byType[t], types.get(byType[t]), rule.then.properties.payload);
  }
});

test('actions match task_client_action(_response).schema.json', { skip }, () => {
  const types = interfaces();
  check('TaskClientAction', types.get('TaskClientAction'), json('task_client_action.schema.json'));
  check('TaskClientActionResponse', types.get('TaskClientActionResponse'), json('task_client_action_response.schema.json'));
});

test('the protocol examples decode as the types say', { skip }, () => {
  const types = interfaces();
  for (const f of ['task_started', 'task_progress', 'task_message', 'task_suspended', 'task_action_accepted', 'task_completed', 'task_failed', 'task_cancelled']) {
    const ex = JSON.parse(readFileSync(path.join(dir, 'examples', `${f}.json`), 'utf8'));
    assert.deepEqual(Object.keys(ex).sort(), [...types.get('TaskEventOf').keys()].sort(), f);
  }
  const hb = JSON.parse(readFileSync(path.join(dir, 'examples', 'websocket_heartbeat.json'), 'utf8'));
  assert.deepEqual(Object.keys(hb).sort(), [...types.get('WebSocketHeartbeat').keys()].sort());
  const ack = JSON.parse(readFileSync(path.join(dir, 'examples', 'websocket_subscribe_ack.json'), 'utf8'));
  const conf = types.get('SubscriptionConfirmed');
  for (const k of Object.keys(ack)) assert.ok(conf.has(k), `SubscriptionConfirmed.${k}`);
  const sub = JSON.parse(readFileSync(path.join(dir, 'examples', 'websocket_subscribe_request.json'), 'utf8'));
  for (const k of Object.keys(sub)) assert.ok(types.get('SubscribeRequest').has(k), `SubscribeRequest.${k}`);
  const poll = JSON.parse(readFileSync(path.join(dir, 'examples', 'poll_events_response.json'), 'utf8'));
  for (const k of Object.keys(poll)) assert.ok(types.get('PollEventsResponse').has(k), `PollEventsResponse.${k}`);
});

// The repository's own JSON Schemas (spec/schemas, always present): every
// body and frame type of the client, extensions included.
test('every body and frame type matches the repository\'s spec/schemas', () => {
  const types = interfaces();
  const specDir = path.join(here, '..', '..', '..', 'spec', 'schemas');
  const own = (f) => JSON.parse(readFileSync(path.join(specDir, `${f}.schema.json`), 'utf8'));
  for (const [iface, file] of [
    ['PollEventsResponse', 'poll_events_response'], ['TaskCreatedResponse', 'task_created_response'],
    ['ErrorResponse', 'error_response'], ['SubscriptionConfirmed', 'ws_subscription_confirmed'],
    ['WebSocketHeartbeat', 'ws_heartbeat'], ['SSEHeartbeat', 'sse_heartbeat'], ['TaskCreateRequest', 'task_create_request'],
    ['SubscribeRequest', 'ws_subscribe_request'], ['CancelTaskRequest', 'cancel_task_request'],
    ['CancelTaskResponse', 'cancel_task_response'], ['TaskClientAction', 'task_action_request'],
    ['TaskClientActionResponse', 'task_action_response'], ['StreamTicketResponse', 'stream_ticket_response'],
  ]) {
    check(iface, types.get(iface), own(file));
  }
});
