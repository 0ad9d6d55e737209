// The WIT `error` variant, as componentize-js expects it.
//
// An export whose WIT type is `result<T, error>` returns `T` on success and
// *throws* on failure. The generated bindings turn the thrown value into the
// `err` case like this:
//
//   - a value with an own `payload` property → that payload is the error;
//   - an `Error` instance without `payload` → re-thrown: the component traps
//     (the host answers 500 CONNECTOR_TRAPPED with the message);
//   - anything else → used as the error as is, so it must be a variant value:
//     `{tag: '<case name in kebab-case>', val: <payload>}`. A tag the WIT
//     variant lacks, or a payload of the wrong type, traps too.
//
// So every expected failure is thrown as one of the plain objects below, and
// a real bug (a TypeError, …) still surfaces as a trap instead of being
// disguised as an upstream error.

/** 400 INVALID_PARAMS: the input is wrong; the message names the field. */
export const invalidInput = (message) => ({ tag: 'invalid-input', val: message });

/** 401 AUTH_REQUIRED: the upstream rejected the credentials. */
export const unauthorized = (message) => ({ tag: 'unauthorized', val: message });

/** 404 UPSTREAM_NOT_FOUND: the upstream object does not exist. */
export const notFound = (message) => ({ tag: 'not-found', val: message });

/**
 * 429 RATE_LIMIT_EXCEEDED. `retryAfterSecs` is an integer number of seconds
 * or `undefined` (WIT `option<u32>`: `undefined`/`null` is `none`).
 */
export const rateLimited = (message, retryAfterSecs) => ({
  tag: 'rate-limited',
  val: { message, retryAfterSecs },
});

/** 502 UPSTREAM_ERROR (422 UPSTREAM_REJECTED for a 4xx status). */
export const upstream = (status, message) => ({ tag: 'upstream', val: { status, message } });

/** 503 TEMPORARY_ERROR: the same call may succeed later. */
export const temporary = (message) => ({ tag: 'temporary', val: message });

/** 422 PERMANENT_ERROR: retrying will not help. */
export const permanent = (message) => ({ tag: 'permanent', val: message });

/** 422 CONFIG_ERROR: the instance configuration is wrong. */
export const config = (message) => ({ tag: 'config', val: message });
