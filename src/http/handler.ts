import { z } from 'zod';
import type { Engine } from '../engine.js';
import { ValidationError } from '../errors.js';
import { parseOrThrow } from '../validation.js';
import type { Settings } from './context.js';
import { Feeds } from './feed.js';
import { MetricsEndpoint } from './metrics.js';
import { errorResponse, HttpProblem } from './problem.js';
import { type Endpoint, matchRoute } from './routes.js';
import type { Action, AuthorizeContext, FetchHandler, HandledEngine, HandlerOptions } from './types.js';
import { ui } from './ui.js';

/** Where toNodeListener finds the handler's body limit, so both stop reading at the same size. */
export const BODY_LIMIT = Symbol.for('partita.http.maxBodyBytes');

const MIB = 1024 * 1024;

const fn = z.custom<(...args: never[]) => unknown>((v) => typeof v === 'function', {
  message: 'expected a function',
});
const whole = (min: number) => z.number().int().min(min).optional();

const handlerOptionsSchema = z
  .object({
    basePath: z
      .string()
      .refine((p) => p === '' || p.startsWith('/'), { message: "expected '' or a path starting with /" })
      // As a request's URL carries it: `/é`, `/a b`, `/p/../x` or `/p?x` would match no request
      // (an outside probe), so they are refused rather than answering 404 to everything.
      .refine((p) => p === '' || !p.startsWith('/') || new URL(p, 'http://h').pathname === p, {
        message: 'expected a path as a URL carries it (percent-encoded, no . or .. segment, no ? or #)',
      })
      .optional(),
    authorize: fn.optional(),
    maxBodyBytes: whole(1),
    retryAfterSeconds: whole(0),
    metrics: z.boolean().optional(),
    heartbeatMs: whole(1),
    eventIntervalMs: whole(0),
    onError: fn.optional(),
  })
  .strict();

function settingsOf(engine: unknown, options: unknown): Settings {
  const e = engine as Partial<Engine> | null | undefined;
  if (typeof e?.submit !== 'function' || typeof e.get !== 'function' || typeof e.subscribe !== 'function')
    throw new ValidationError('createHandler: the first argument must be an engine from createEngine()', [
      { path: 'engine', message: 'expected an engine from createEngine()' },
    ]);
  const o = parseOrThrow(handlerOptionsSchema, options ?? {}, 'createHandler options') as HandlerOptions;
  return {
    basePath: (o.basePath ?? '').replace(/\/+$/, ''),
    maxBodyBytes: o.maxBodyBytes ?? MIB,
    retryAfterSeconds: o.retryAfterSeconds ?? 1,
    heartbeatMs: o.heartbeatMs ?? 15_000,
    eventIntervalMs: o.eventIntervalMs ?? 250,
  };
}

/**
 * A fetch-standard handler for an engine's HTTP API: `(request) => Promise<Response>`, to mount in
 * node:http (through {@link toNodeListener}), Hono, Fastify, Express, Deno or Bun. Routes and
 * status codes: docs/operating.md. Errors are `application/problem+json` with partita's `code`.
 *
 * `authorize(request, action, { batchId })` runs before every route; when it refuses, nothing is
 * read, created or changed.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { createHandler, toNodeListener } from 'partita/http';
 *
 * const handler = createHandler(engine, {
 *   basePath: '/partita',
 *   authorize: (req) => req.headers.get('authorization') === `Bearer ${process.env.PARTITA_TOKEN}`,
 * });
 * createServer(toNodeListener(handler)).listen(8080);
 * ```
 */
export function createHandler(engine: Engine, options: HandlerOptions = {}): FetchHandler {
  const settings = settingsOf(engine, options);
  const authorize = options.authorize;
  const onError = options.onError;
  const metrics = options.metrics === false ? undefined : new MetricsEndpoint(engine);
  const api = engine as HandledEngine;
  const feeds = new Feeds(api, settings);

  /** 403, or the authorizer's own response, when it refuses; undefined when it allows. */
  async function refused(
    request: Request,
    action: Action,
    context: AuthorizeContext,
  ): Promise<Response | undefined> {
    if (!authorize) return undefined;
    const verdict = await authorize(request, action, context);
    if (verdict === true) return undefined;
    if (verdict instanceof Response) return verdict;
    throw new HttpProblem(403, 'FORBIDDEN', `Not allowed to ${action}.`);
  }

  const handler = async (request: Request): Promise<Response> => {
    let instance = '/';
    try {
      const url = new URL(request.url);
      instance = url.pathname;
      const path = pathUnder(url.pathname, settings.basePath);
      if (path === undefined) throw noRoute(url.pathname);
      if (path === '/ui' || path.startsWith('/ui/'))
        return (await refused(request, 'ui', {})) ?? (await ui(request, settings.basePath, path));
      const head = request.method === 'HEAD';
      const method = head ? 'GET' : request.method;
      let methods: Partial<Record<string, Endpoint>>;
      let id = '';
      if (path === '/metrics' && metrics)
        methods = { GET: { action: 'metrics', run: () => metrics.respond() } };
      else {
        const match = matchRoute(path, api);
        if (!match) throw noRoute(url.pathname);
        ({ methods, id } = match);
      }
      const endpoint = methods[method];
      if (!endpoint) {
        const allow = Object.keys(methods);
        if (allow.includes('GET')) allow.push('HEAD');
        throw new HttpProblem(405, 'METHOD_NOT_ALLOWED', `${request.method} is not allowed here.`, {
          allow: allow.join(', '),
        });
      }
      const denied = await refused(request, endpoint.action, id ? { batchId: id } : {});
      if (denied) return denied;
      const response = await endpoint.run({ engine: api, request, url, id, settings, feeds });
      if (!head) return response;
      await response.body?.cancel(); // an event stream unsubscribes
      return new Response(null, { status: response.status, headers: response.headers });
    } catch (err) {
      return errorResponse(err, instance, settings.retryAfterSeconds, (e) => {
        try {
          onError?.(e, request);
        } catch {
          // The host's reporter failed; the client still gets its 500.
        }
      });
    }
  };
  Object.defineProperty(handler, BODY_LIMIT, { value: settings.maxBodyBytes });
  return handler;
}

/**
 * The path below `basePath` (always starting with '/'), or undefined when outside it. A trailing
 * slash is dropped (`/batches/` is `/batches`), except under `/ui`, whose pages are the dashboard's.
 */
function pathUnder(pathname: string, basePath: string): string | undefined {
  let path: string;
  if (basePath === '') path = pathname;
  else if (pathname === basePath) path = '/';
  else if (pathname.startsWith(`${basePath}/`)) path = pathname.slice(basePath.length);
  else return undefined;
  if (path.length > 1 && path.endsWith('/') && path !== '/ui/' && !path.startsWith('/ui/'))
    path = path.slice(0, -1);
  return path;
}

function noRoute(pathname: string): HttpProblem {
  return new HttpProblem(404, 'NO_ROUTE', `No route for ${pathname}.`);
}
