// Talking to the Tasks API: base URL, requests, and the mapping of upstream
// answers to the WIT `error` variant (the table in
// docs/authoring/tasks-example.md).
//
// Requests use the global `fetch`, which componentize-js implements on
// `wasi:http/outgoing-handler`: every request goes through the host, which
// checks it against the manifest's hosts, applies rate budgets and retries,
// and adds `authorization: Bearer <api_token>` itself. The connector never
// sees the token and never sets `authorization`.

import { getConfig, log } from 'plugboard:connector/host@0.1.0';
import * as err from './errors.js';

/** Used when the instance config has no `api_base` (also the schema default). */
export const DEFAULT_API_BASE = 'https://tasks.example.com/api';

/**
 * The base URL of the Tasks API, without one trailing `/`.
 * `getConfig` returns the value as JSON text (`"https://…"`, with quotes) or
 * `undefined` when the key is not set.
 */
export function apiBase() {
  const raw = getConfig('api_base');
  let base = DEFAULT_API_BASE;
  if (raw !== undefined && raw !== null) {
    let value;
    try {
      value = JSON.parse(raw);
    } catch {
      throw err.config('api_base is not valid JSON');
    }
    if (typeof value !== 'string') {
      throw err.config('api_base must be a string');
    }
    base = value;
  }
  return base.endsWith('/') ? base.slice(0, -1) : base;
}

/**
 * `value` as one percent-encoded path segment. `encodeURIComponent` escapes
 * `/`, `?`, `#` and `%`; `.` and `..` cannot be expressed at all, because the
 * URL parser behind `fetch` removes dot segments even when percent-encoded
 * (`/tasks/%2E%2E` becomes `/`), so they are refused instead of silently
 * requesting another resource.
 */
export function pathSegment(name, value) {
  if (value === '.' || value === '..') {
    throw err.invalidInput(`${name} must not be \`.\` or \`..\``);
  }
  return encodeURIComponent(value);
}

/**
 * Sends one request and returns `{status, headers, body}` with `body` parsed
 * as JSON (`undefined` when it is empty or not JSON).
 *
 * A request that fails before an HTTP answer (denied by the host's egress
 * policy, connection refused, timeout, over a per-call limit) becomes
 * `temporary("request failed: …")`. The host knows the precise reason and
 * answers the call with it (HOST_DENIED, UPSTREAM_UNREACHABLE,
 * UPSTREAM_TIMEOUT, OUTBOUND_LIMIT) instead of this error.
 */
export async function request(method, url, body) {
  const headers = { accept: 'application/json' };
  const init = { method, headers };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  let text;
  try {
    response = await fetch(url, init);
    text = await response.text();
  } catch (e) {
    throw err.temporary(`request failed: ${fetchErrorCode(e)}`);
  }
  let json;
  if (text.length > 0) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  return { status: response.status, headers: response.headers, body: json };
}

/**
 * What a failed `fetch` says. StarlingMonkey (componentize-js 0.23.0)
 * rejects with `TypeError: NetworkError when attempting to fetch resource`
 * whatever the wasi:http error code was (denied, refused, timeout): the code
 * is not exposed to JavaScript, so the message is all there is.
 */
function fetchErrorCode(e) {
  return e instanceof Error ? e.message : String(e);
}

/** True for a JSON object (not an array, not null). */
export function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The upstream's `error` field when it is a string, else `HTTP <status>`. */
function upstreamMessage(status, body) {
  if (isObject(body) && typeof body.error === 'string') return body.error;
  return `HTTP ${status}`;
}

/**
 * `Retry-After` as whole seconds, or `undefined` when absent or not a
 * non-negative integer that fits a u32 (an HTTP date is not used: the host
 * already honours it for its own rate budget).
 */
function retryAfterSecs(headers) {
  const value = headers.get('retry-after');
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (!/^[0-9]+$/.test(trimmed)) return undefined;
  const secs = Number(trimmed);
  return secs <= 0xffffffff ? secs : undefined;
}

/**
 * Throws the WIT error for a non-2xx answer; returns nothing for a 2xx.
 */
export function checkStatus({ status, headers, body }) {
  if (status >= 200 && status <= 299) return;
  const message = upstreamMessage(status, body);
  if (status === 400 || status === 422) throw err.invalidInput(message);
  if (status === 401 || status === 403) throw err.unauthorized(message);
  if (status === 404) throw err.notFound(message);
  if (status === 429) throw err.rateLimited(message, retryAfterSecs(headers));
  if (status >= 500 && status <= 599) throw err.temporary(message);
  throw err.upstream(status, message);
}

/**
 * A 2xx answer's body reduced to `{id, title, done}`, or
 * `upstream({status, "unexpected response body"})` when it is not a task.
 */
export function reduceTask({ status, body }) {
  if (
    isObject(body) &&
    typeof body.id === 'string' &&
    typeof body.title === 'string' &&
    typeof body.done === 'boolean'
  ) {
    return { id: body.id, title: body.title, done: body.done };
  }
  throw unexpectedBody(status);
}

/** The error for a 2xx answer whose body does not have the expected shape. */
export function unexpectedBody(status) {
  // Logged so an operator can tell a changed upstream API from a bug; the
  // body itself is not logged (it may hold personal data).
  log('warn', 'unexpected response body', [{ key: 'status', value: String(status) }]);
  return err.upstream(status, 'unexpected response body');
}
