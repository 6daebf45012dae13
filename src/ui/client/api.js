// The JSON API of partita/http, as the dashboard uses it. Same origin, so the browser sends whatever
// credentials the page itself was loaded with (cookies, Basic auth); no token is kept in script.

/** An error answer (application/problem+json): `status`, `code` and a readable message. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {{ title?: string; detail?: string; code?: string } | undefined} problem
   * @param {string} fallback
   */
  constructor(status, problem, fallback) {
    super(problem?.detail || problem?.title || fallback || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = problem?.code;
  }
}

/** @param {string} base the handler's basePath */
export function createApi(base) {
  // The server's clock minus this browser's, from the last answer's Date header (to within half a
  // second): the chart plots the server's timestamps (startedAt) and this browser's arrival times
  // on one axis.
  let skew = 0;
  /**
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   */
  async function request(method, path, body) {
    /** @type {Record<string, string>} */
    const headers = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const date = Date.parse(res.headers.get('date') ?? '');
    // The header is cut to the second: the server's clock was half a second past it, on average.
    if (!Number.isNaN(date)) skew = date + 500 - Date.now();
    const json = (res.headers.get('content-type') ?? '').includes('json');
    const data = json ? await res.json().catch(() => undefined) : undefined;
    if (!res.ok) throw new ApiError(res.status, data, res.statusText);
    return data;
  }
  /** @param {Record<string, string | number | undefined>} params */
  const query = (params) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
    const text = q.toString();
    return text ? `?${text}` : '';
  };
  /** @param {string} id */
  const batch = (id) => `/batches/${encodeURIComponent(id)}`;
  return {
    /** @param {{ status?: string; job?: string; limit?: number; cursor?: string }} filter */
    list: (filter) => request('GET', `/batches${query(filter)}`),
    /** @param {string} id */
    get: (id) => request('GET', batch(id)),
    /** @param {{ job: string; input: unknown; id?: string; priority?: number }} body */
    submit: (body) => request('POST', '/batches', body),
    /**
     * @param {string} id
     * @param {{ status?: string; cursor?: string; limit?: number }} filter
     */
    partitions: (id, filter) => request('GET', `${batch(id)}/partitions${query(filter)}`),
    /**
     * POST /batches/:id/cancel|pause|resume|retry-failed. An empty JSON object as body: a handler
     * that insists on JSON for every POST (a CSRF defence) accepts it.
     * @param {string} id
     * @param {string} action
     */
    action: (id, action) => request('POST', `${batch(id)}/${action}`, {}),
    /** @param {string} id */
    eventsUrl: (id) => `${base}${batch(id)}/events`,
    /** Milliseconds to add to Date.now() to read the server's clock. */
    skew: () => skew,
    statechart: () => request('GET', '/ui/statechart.json'),
  };
}

/** @typedef {ReturnType<typeof createApi>} Api */
