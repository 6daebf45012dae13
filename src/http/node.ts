import type { IncomingMessage, ServerResponse } from 'node:http';
import { BodyTooLargeError } from './body.js';
import { BODY_LIMIT } from './handler.js';
import type { FetchHandler } from './types.js';

/** What `toNodeListener` takes. */
export interface NodeListenerOptions {
  /** Stop reading a request body past this many bytes. Default: the handler's `maxBodyBytes`. */
  maxBodyBytes?: number;
}

/** After a response, what of an unread request body is read and dropped to keep the connection. */
const DRAIN_BYTES = 8 * 1024 * 1024;
const DRAIN_MS = 5_000;

/**
 * Adapt a fetch-standard handler to `node:http` (`http.createServer(toNodeListener(handler))`, or
 * Express). The request body is streamed to the handler with backpressure and cut off past the body
 * limit; the response body is streamed as it is produced (event streams), waiting for the socket to
 * drain; when the client goes away, the request's signal aborts and the response body is cancelled.
 *
 * @example
 * ```ts
 * createServer(toNodeListener(createHandler(engine))).listen(8080);
 * ```
 */
export function toNodeListener(
  handler: FetchHandler,
  options: NodeListenerOptions = {},
): (req: IncomingMessage, res: ServerResponse) => void {
  const limit =
    options.maxBodyBytes ??
    (handler as unknown as Record<symbol, number | undefined>)[BODY_LIMIT] ??
    1024 * 1024;
  return (req, res) => {
    serve(handler, req, res, limit).catch((err: unknown) => {
      // Only a bug in this adapter lands here; the handler itself answers every error.
      if (!res.headersSent) {
        res.statusCode = 500;
        res.end();
      } else res.destroy(err as Error);
    });
  };
}

interface BodyState {
  /** The body is being read and dropped: nothing goes to the handler any more. */
  dropping: boolean;
}

async function serve(
  handler: FetchHandler,
  req: IncomingMessage,
  res: ServerResponse,
  limit: number,
): Promise<void> {
  const abort = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) abort.abort();
  });
  let url: URL;
  try {
    const host = req.headers.host ?? 'localhost';
    const scheme = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
    url = new URL(req.url ?? '/', `${scheme}://${host}`);
  } catch {
    res.statusCode = 400;
    res.end();
    return;
  }
  const state: BodyState = { dropping: false };
  const method = req.method ?? 'GET';
  const hasBody =
    method !== 'GET' &&
    method !== 'HEAD' &&
    (req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0);
  const init: RequestInit & { duplex?: 'half' } = {
    method,
    headers: headersOf(req),
    signal: abort.signal,
  };
  if (hasBody) {
    init.body = bodyStream(req, limit, state);
    init.duplex = 'half'; // required by fetch for a streamed body
  }
  const response = await handler(new Request(url, init));
  res.once('finish', () => dropRest(req, state, hasBody));
  await writeResponse(response, req, res);
}

function headersOf(req: IncomingMessage): Headers {
  const headers = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.startsWith(':')) continue; // HTTP/2 pseudo-headers
    try {
      headers.append(name, raw[i + 1]!);
    } catch {
      // A header value fetch refuses (Node accepts a few more characters): left out.
    }
  }
  return headers;
}

/** The request body as a stream that reads the socket only as fast as the handler consumes. */
function bodyStream(req: IncomingMessage, limit: number, state: BodyState): ReadableStream<Uint8Array> {
  let received = 0;
  let ended = false;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      req.on('data', (chunk: Buffer) => {
        if (ended || state.dropping) return;
        received += chunk.byteLength;
        if (received > limit) {
          ended = true;
          req.pause();
          controller.error(new BodyTooLargeError(limit));
          return;
        }
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((controller.desiredSize ?? 0) <= 0) req.pause();
      });
      req.once('end', () => {
        if (ended) return;
        ended = true;
        controller.close();
      });
      const fail = (err: Error) => {
        if (ended) return;
        ended = true;
        controller.error(err);
      };
      req.once('error', fail);
      // The client went away before sending the whole body.
      req.once('close', () => fail(new Error('the client closed the connection before the body ended')));
    },
    pull() {
      if (!state.dropping) req.resume();
    },
    cancel() {
      ended = true;
      req.pause();
    },
  });
}

/**
 * A response went out before the body was read (a refusal, a 413): read what remains, up to a
 * bound, so the client receives the response and the connection can be reused; past the bound the
 * socket is closed.
 */
function dropRest(req: IncomingMessage, state: BodyState, hasBody: boolean): void {
  if (!hasBody || req.complete) return;
  state.dropping = true;
  let dropped = 0;
  const timer = setTimeout(() => req.destroy(), DRAIN_MS);
  timer.unref();
  req.on('data', (chunk: Buffer) => {
    dropped += chunk.byteLength;
    if (dropped > DRAIN_BYTES) req.destroy();
  });
  req.once('close', () => clearTimeout(timer));
  req.once('end', () => clearTimeout(timer));
  req.resume();
}

async function writeResponse(response: Response, req: IncomingMessage, res: ServerResponse): Promise<void> {
  res.statusCode = response.status;
  const cookies = response.headers.getSetCookie();
  response.headers.forEach((value, name) => {
    if (name !== 'set-cookie') res.setHeader(name, value);
  });
  if (cookies.length > 0) res.setHeader('set-cookie', cookies);
  const body = response.body;
  if (!body || req.method === 'HEAD') {
    await body?.cancel();
    res.end();
    return;
  }
  // Headers now: an event stream's client learns at once that it is connected.
  if (response.headers.get('content-type')?.startsWith('text/event-stream')) res.flushHeaders();
  const reader = body.getReader();
  const stop = () => {
    reader.cancel().catch(() => {});
  };
  res.once('close', stop);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done || res.destroyed) break;
      if (!res.write(value)) await drained(res);
    }
    res.end();
  } catch (err) {
    res.destroy(err as Error);
  } finally {
    res.off('close', stop);
  }
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}
