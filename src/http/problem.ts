import { isUnreadableRow, PartitaError, ValidationError } from '../errors.js';

/**
 * Errors as RFC 9457 problem details (`application/problem+json`): `type`, `title`, `status`,
 * `detail`, `instance`, plus partita's stable `code` (and `issues` for a VALIDATION error). A 500
 * says nothing about its cause: no message, no stack.
 */

/** A problem to answer with: thrown inside the handler, turned into a response at the top. */
export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    detail: string,
    readonly headers: Record<string, string> = {},
    readonly extra: Record<string, unknown> = {},
  ) {
    super(detail);
    this.name = 'HttpProblem';
  }
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** HTTP status of each partita error code; anything else is a 500. */
const STATUS_OF_CODE: Record<string, number> = {
  VALIDATION: 400,
  UNKNOWN_JOB: 400,
  NOT_FOUND: 404,
  LEASE_LOST: 409,
  // The batch's state does not allow it (pausing a final batch, …).
  CONFLICT: 409,
  // The engine raises ENGINE_STATE when it is not started (or stopped): try again later. The
  // conflicts the handler itself detects (a batch run by another engine) are answered 409 directly.
  ENGINE_STATE: 503,
  // The store could not read or write: transient, the engine retries too (a corrupt row: 500).
  STORE: 503,
  // A stored batch written by a newer version of partita: left untouched; someone must upgrade.
  SNAPSHOT_VERSION: 500,
};

export function problemResponse(
  status: number,
  code: string,
  detail: string,
  instance: string,
  headers: Record<string, string> = {},
  extra: Record<string, unknown> = {},
): Response {
  const body = {
    type: `urn:partita:problem:${code.toLowerCase()}`,
    title: TITLES[status] ?? 'Error',
    status,
    detail,
    instance,
    code,
    ...extra,
  };
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/problem+json', 'cache-control': 'no-store', ...headers },
  });
}

/**
 * The response for anything a route threw. `internal` is told about what became a 500, so the
 * host can log it; the client only learns that something went wrong.
 */
export function errorResponse(
  err: unknown,
  instance: string,
  retryAfterSeconds: number,
  internal: (err: unknown) => void,
): Response {
  if (err instanceof HttpProblem)
    return problemResponse(err.status, err.code, err.message, instance, err.headers, err.extra);
  if (err instanceof PartitaError && STATUS_OF_CODE[err.code] !== undefined) {
    // A stored batch that cannot be read is no passing outage: 500, not 503 with Retry-After (a
    // client would retry for good), and its detail is shown: the operator has to look at it.
    const status = isUnreadableRow(err) ? 500 : STATUS_OF_CODE[err.code]!;
    const headers: Record<string, string> =
      status === 503 ? { 'retry-after': String(retryAfterSeconds) } : {};
    const extra = err instanceof ValidationError ? { issues: err.issues } : {};
    return problemResponse(status, err.code, err.message, instance, headers, extra);
  }
  internal(err);
  const code = err instanceof PartitaError ? err.code : 'INTERNAL';
  return problemResponse(500, code, 'The request could not be completed; the server logged why.', instance);
}
