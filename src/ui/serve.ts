import { batchMachine, statusOf } from '../machines/batch.js';
import { FILES, VERSION } from './assets.js';
import { page } from './page.js';
import {
  type Body,
  CONTENT_TYPES,
  etagOf,
  IMMUTABLE,
  methodNotAllowed,
  REVALIDATE,
  respond,
} from './respond.js';
import { statechartJson } from './statechart.js';

/**
 * The dashboard under `${basePath}/ui`, for partita/http's handler. Routes (`path` is what follows
 * basePath):
 *
 * - `/ui`, `/ui/`, `/ui/batch/<id>`: the page (the script draws the list or the batch);
 * - `/ui/assets/<version>/<file>`: the scripts and the stylesheet (src/ui/client/, via assets.ts);
 * - `/ui/statechart.json`: the batch statechart, read from `batchMachine`.
 *
 * Resolves undefined for any other path, so the handler answers 404 as for any unknown route.
 *
 * @example
 * ```ts
 * const res = await serveUi(request, { basePath: '/partita', path: '/ui/batch/b-42' });
 * // res?.headers.get('content-type') === 'text/html; charset=utf-8'
 * ```
 */
export async function serveUi(
  request: Request,
  opts: { basePath: string; path: string },
): Promise<Response | undefined> {
  const path = opts.path.split('?')[0] ?? '';
  const body = route(path, opts.basePath);
  if (!body) return undefined;
  if (request.method !== 'GET' && request.method !== 'HEAD')
    return methodNotAllowed(request.method, `${opts.basePath}${path}`);
  return respond(request, body);
}

function route(path: string, basePath: string): Body | undefined {
  if (path === '/ui' || path === '/ui/' || /^\/ui\/batch\/[^/]+\/?$/.test(path)) return page(basePath);
  if (path === '/ui/statechart.json') return statechart();
  const asset = /^\/ui\/assets\/([^/]+)\/([^/]+)$/.exec(path);
  if (asset) return file(asset[1]!, asset[2]!);
  return undefined;
}

const files = new Map<string, Body>();

/**
 * A script or the stylesheet. A page of an older version (the package was upgraded while it was
 * open) still gets the current files, but not to keep: only URLs of the current version are
 * immutable.
 */
function file(version: string, name: string): Body | undefined {
  if (!Object.hasOwn(FILES, name)) return undefined;
  const current = version === VERSION;
  const key = `${current}:${name}`;
  let body = files.get(key);
  if (!body) {
    const text = FILES[name]!;
    const type = CONTENT_TYPES[name.slice(name.lastIndexOf('.') + 1)] ?? 'application/octet-stream';
    body = { text, type, etag: `"${VERSION}"`, cache: current ? IMMUTABLE : REVALIDATE };
    files.set(key, body);
  }
  return body;
}

let chart: Body | undefined;

/** Built on first use: walking the machine is cheap, but there is no reason to do it at import. */
function statechart(): Body {
  if (!chart) {
    const text = JSON.stringify(statechartJson(batchMachine, statusOf));
    chart = { text, type: CONTENT_TYPES.json!, etag: etagOf(text), cache: REVALIDATE };
  }
  return chart;
}
