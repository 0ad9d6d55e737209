// `broken-js`: a JavaScript connector that breaks the WIT contract on
// purpose, to pin down what the host answers when a componentize-js guest
// returns or throws something the bindings cannot lower.
//
// `describe` is valid. Each method is one mistake a JavaScript author can
// make:
//
// - `wrong_result`: a result that does not match the declared schema
//   (`kind: "json-array"`, the default: the JSON text `[1,2]`), is not JSON
//   (`"not-json"`), or is not a string at all (`"not-a-string"`: the array
//   itself instead of `JSON.stringify`'d text).
// - `throw_object`: throws `{code: 42}`, an object that is not a variant value.
// - `throw_error`: throws `new Error("boom")`.
// - `throw_string`: throws the string `"boom"` (right for `result<_, string>`,
//   wrong for `result<_, error>`).
// - `undeclared_error`: throws `{tag: 'teapot', val: 'x'}`, a case the WIT
//   `error` variant does not have.
//
// How componentize-js 0.23 lowers a thrown value: an own `payload` property
// is the error; an `Error` without one is re-thrown; anything else is used
// as the variant value as is. See docs/authoring/js.md.

const S = JSON.stringify;

const CONNECTOR_NAME = "broken-js";

const NO_PARAMS = { type: 'object', additionalProperties: false };
const TASK_SCHEMA = {
  type: 'object',
  properties: { id: { type: 'string' } },
  required: ['id'],
};

const METHODS = [
  {
    name: 'wrong_result',
    description: 'Returns a result that breaks the declared result schema or is not JSON text.',
    params: {
      type: 'object',
      properties: { kind: { type: 'string', enum: ['json-array', 'not-json', 'not-a-string'] } },
      additionalProperties: false,
    },
    result: TASK_SCHEMA,
  },
  { name: 'throw_object', description: 'Throws {code: 42}.', params: NO_PARAMS, result: TASK_SCHEMA },
  { name: 'throw_error', description: 'Throws new Error("boom").', params: NO_PARAMS, result: TASK_SCHEMA },
  { name: 'throw_string', description: 'Throws the string "boom".', params: NO_PARAMS, result: TASK_SCHEMA },
  {
    name: 'undeclared_error',
    description: "Throws {tag: 'teapot', val: 'x'}, a case the error variant lacks.",
    params: NO_PARAMS,
    result: TASK_SCHEMA,
  },
];

export function describe() {
  return {
    name: CONNECTOR_NAME,
    version: '0.1.0',
    description: 'Test guest: breaks the result and error contract on purpose.',
    methods: METHODS.map((m) => ({
      name: m.name,
      description: m.description,
      paramsSchema: S(m.params),
      resultSchema: S(m.result),
    })),
    configSchema: S({ type: 'object', additionalProperties: false }),
    credentialSchema: S({ type: 'object', additionalProperties: false }),
    auth: { scheme: { tag: 'none' }, hosts: [], staticHeaders: [] },
    hosts: [],
    webhook: undefined,
    rateLimit: undefined,
  };
}

export function testConnection() {
  return 'nothing to test';
}

export function invoke(method, params) {
  const p = JSON.parse(params);
  switch (method) {
    case 'wrong_result':
      switch (p.kind ?? 'json-array') {
        case 'json-array':
          return S([1, 2]);
        case 'not-json':
          return 'this is not JSON';
        case 'not-a-string':
          return [1, 2];
      }
      break;
    case 'throw_object':
      throw { code: 42 };
    case 'throw_error':
      throw new Error('boom');
    case 'throw_string':
      throw 'boom';
    case 'undeclared_error':
      throw { tag: 'teapot', val: 'x' };
  }
  throw { tag: 'invalid-input', val: `unknown method \`${method}\`` };
}

export function handleWebhook() {
  return { response: undefined, events: [] };
}
