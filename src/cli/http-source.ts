import type { PartitionView } from '../store/store.js';
import type { BatchSummary } from '../summary.js';
import { isDotSegment } from '../values.js';
import { UsageError } from './args.js';
import { redact } from './redact.js';
import type { Service, Source } from './source.js';

/** An error a service answered with (problem+json): its `code` and `detail`. */
export class ServiceError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ServiceError';
  }
}

/**
 * A running service's HTTP API (partita/http) at `base`, e.g. `http://localhost:8080/partita`.
 * `PARTITA_TOKEN`, when set, is sent as a bearer token.
 */
export function httpSource(base: string, token = process.env.PARTITA_TOKEN): Source & Service {
  const root = base.replace(/\/+$/, '');
  // A URL that does not parse is the caller's mistake (exit 2), not an unreachable service (exit 1).
  if (!URL.canParse(root) || !/^https?:$/.test(new URL(root).protocol))
    throw new UsageError(`--url must be an http(s) URL, not "${redact(base)}"`);
  // fetch() refuses such a URL; its message would print the password (an outside probe).
  const { username, password } = new URL(root);
  if (username || password)
    throw new UsageError(
      `--url must not hold credentials (${redact(root)}): give a bearer token in PARTITA_TOKEN`,
    );
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;

  async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${root}${path}`, {
        method,
        headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (err) {
      const cause = (err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message;
      throw new ServiceError(0, 'UNREACHABLE', `cannot reach ${root}: ${cause}`);
    }
    const text = await res.text();
    if (res.ok) return JSON.parse(text) as T;
    let problem: { code?: string; detail?: string } = {};
    try {
      problem = JSON.parse(text) as typeof problem;
    } catch {
      // not a problem document: the status says it all
    }
    throw new ServiceError(
      res.status,
      problem.code ?? `HTTP_${res.status}`,
      problem.detail ?? `${method} ${path}: HTTP ${res.status}`,
    );
  }

  const batch = (id: string) => {
    // A URL drops these segments (`/batches/..` is `/`): the service would answer another route.
    if (isDotSegment(id)) throw new UsageError(`no URL can name the batch "${id}": use --db or --pg`);
    return `/batches/${encodeURIComponent(id)}`;
  };

  async function* pages<T>(
    path: string,
    params: URLSearchParams,
    max = Number.POSITIVE_INFINITY,
  ): AsyncIterable<T> {
    let cursor: string | undefined;
    let count = 0;
    do {
      if (cursor) params.set('cursor', cursor);
      const page = await call<{ items: T[]; nextCursor?: string }>('GET', `${path}?${params}`);
      for (const item of page.items) {
        if (count++ >= max) return;
        yield item;
      }
      cursor = page.nextCursor;
    } while (cursor);
  }

  return {
    name: root,
    async list({ status, job, limit }) {
      const params = new URLSearchParams({ limit: String(Math.min(limit, 1000)), include: 'output' });
      if (status?.length) params.set('status', status.join(','));
      if (job) params.set('job', job);
      const out: BatchSummary[] = [];
      for await (const s of pages<BatchSummary>('/batches', params, limit)) out.push(s);
      return out;
    },
    get: (id) => call<BatchSummary>('GET', batch(id)),
    partitions(id, filter) {
      const params = new URLSearchParams({ limit: '1000', include: 'result' });
      if (filter.status) params.set('status', filter.status);
      return pages<PartitionView>(`${batch(id)}/partitions`, params);
    },
    submit: (body) => call<BatchSummary>('POST', '/batches', body),
    act: (id, action, body) => call<BatchSummary>('POST', `${batch(id)}/${action}`, body ?? {}),
    prune: (query) => call<{ deleted: number }>('DELETE', `/batches?${query}`),
    close: async () => {},
  };
}
