// The `tasks` example connector in JavaScript: reads and creates tasks in the
// Tasks API and turns its webhooks into events. Behaviour specified in
// docs/authoring/tasks-example.md (identical in every language).
//
// This module implements the WIT world `connector` (wit/connector.wit). Each
// world export is an exported function named in lowerCamelCase
// (`test-connection` → `testConnection`); records are plain objects with
// lowerCamelCase keys, variants are `{tag: 'kebab-case', val}`, `option<T>`
// is the value or `undefined`, `list<u8>` is a `Uint8Array`. Exports may be
// `async`: componentize-js runs the event loop until the promise settles.
// Failures are thrown, see ./errors.js.

import * as api from './api.js';
import * as err from './errors.js';

/** The connector's name; `plugboard new` renames a copy by replacing it. */
const CONNECTOR_NAME = "tasks";

const VERSION = '0.1.0';

/** Result schema of `get_task` and `create_task`. */
const TASK_SCHEMA = {
  type: 'object',
  properties: { id: { type: 'string' }, title: { type: 'string' }, done: { type: 'boolean' } },
  required: ['id', 'title', 'done'],
};

const MESSAGE_SCHEMA = {
  type: 'object',
  properties: { message: { type: 'string' } },
  required: ['message'],
  additionalProperties: false,
};

/**
 * The methods, in manifest order. The host validates parameters against
 * `params` before calling `invoke`, so handlers can rely on the shape.
 */
const METHODS = [
  {
    name: 'echo',
    description: 'Returns `message` unchanged; no network.',
    params: MESSAGE_SCHEMA,
    result: MESSAGE_SCHEMA,
    run: echo,
  },
  {
    name: 'get_task',
    description: 'Fetches one task by id.',
    params: {
      type: 'object',
      properties: { id: { type: 'string', minLength: 1 } },
      required: ['id'],
      additionalProperties: false,
    },
    result: TASK_SCHEMA,
    run: getTask,
  },
  {
    name: 'create_task',
    description: 'Creates a task.',
    params: {
      type: 'object',
      properties: { title: { type: 'string', minLength: 1 } },
      required: ['title'],
      additionalProperties: false,
    },
    result: TASK_SCHEMA,
    run: createTask,
  },
];

const CONFIG_SCHEMA = {
  type: 'object',
  properties: {
    api_base: {
      type: 'string',
      format: 'uri',
      default: api.DEFAULT_API_BASE,
      description: 'Base URL of the Tasks API',
    },
  },
  additionalProperties: false,
};

const CREDENTIAL_SCHEMA = {
  type: 'object',
  properties: {
    api_token: { type: 'string', description: 'API token' },
    webhook_secret: { type: 'string', description: 'Shared secret Tasks sends with webhooks' },
  },
  required: ['api_token'],
  additionalProperties: false,
};

/** WIT `describe: func() -> manifest`. Called once at upload; no I/O. */
export function describe() {
  return {
    name: CONNECTOR_NAME,
    version: VERSION,
    description:
      'Example connector for the Tasks API: reads and creates tasks, receives task webhooks.',
    methods: METHODS.map((m) => ({
      name: m.name,
      description: m.description,
      paramsSchema: JSON.stringify(m.params),
      resultSchema: JSON.stringify(m.result),
    })),
    configSchema: JSON.stringify(CONFIG_SCHEMA),
    credentialSchema: JSON.stringify(CREDENTIAL_SCHEMA),
    auth: {
      // The host sends `authorization: Bearer <api_token>` to these hosts.
      scheme: { tag: 'bearer', val: 'api_token' },
      hosts: ['{api_base}'],
      staticHeaders: [],
    },
    // `{api_base}` is filled from the instance config (schema default when
    // unset), so a test can point an instance at a fake upstream.
    hosts: ['{api_base}'],
    webhook: {
      scheme: {
        tag: 'shared-secret',
        val: { header: 'x-tasks-secret', secretField: 'webhook_secret' },
      },
      deliveryIdHeader: 'x-tasks-delivery',
    },
    rateLimit: undefined,
  };
}

/** WIT `test-connection: func() -> result<string, error>`. */
export async function testConnection() {
  const answer = await api.request('GET', `${api.apiBase()}/me`);
  api.checkStatus(answer);
  if (!api.isObject(answer.body) || typeof answer.body.name !== 'string') {
    throw api.unexpectedBody(answer.status);
  }
  return `connected as ${answer.body.name}`;
}

/** WIT `invoke: func(method: string, params: json) -> result<json, error>`. */
export async function invoke(method, params) {
  const entry = METHODS.find((m) => m.name === method);
  if (entry === undefined) {
    throw err.invalidInput(`unknown method \`${method}\``);
  }
  let parsed;
  try {
    parsed = JSON.parse(params);
  } catch {
    throw err.invalidInput('params is not valid JSON');
  }
  if (!api.isObject(parsed)) {
    throw err.invalidInput('params must be a JSON object');
  }
  const result = await entry.run(parsed);
  return JSON.stringify(result);
}

/** `echo`: the message back; an empty one is refused. */
function echo({ message }) {
  if (message === '') {
    throw err.invalidInput('message must not be empty');
  }
  return { message };
}

/** `get_task`: `GET {api_base}/tasks/{id}`. */
async function getTask({ id }) {
  const url = `${api.apiBase()}/tasks/${api.pathSegment('id', id)}`;
  const answer = await api.request('GET', url);
  api.checkStatus(answer);
  return api.reduceTask(answer);
}

/** `create_task`: `POST {api_base}/tasks` with `{"title": …}`. */
async function createTask({ title }) {
  const answer = await api.request('POST', `${api.apiBase()}/tasks`, { title });
  api.checkStatus(answer);
  return api.reduceTask(answer);
}

/**
 * WIT `handle-webhook: func(request: webhook-request) -> result<webhook-outcome, error>`.
 * The host has already checked `x-tasks-secret`; this only parses the body:
 * `{"type": "task.created", "id": "evt_1", "task": {…}}` → one event.
 */
export function handleWebhook(request) {
  let body;
  try {
    // `fatal: true`: invalid UTF-8 is an error, not replacement characters.
    body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(request.body));
  } catch {
    throw err.invalidInput('body is not JSON');
  }
  if (!api.isObject(body)) throw err.invalidInput('body must be a JSON object');
  if (typeof body.type !== 'string') throw err.invalidInput('`type` must be a string');
  if (typeof body.id !== 'string') throw err.invalidInput('`id` must be a string');
  if (!api.isObject(body.task)) throw err.invalidInput('`task` must be an object');
  return {
    // `undefined`: no response of our own, the host answers 200.
    response: undefined,
    events: [{ kind: body.type, id: body.id, payload: JSON.stringify(body.task) }],
  };
}
