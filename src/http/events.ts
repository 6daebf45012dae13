import { isFinalStatus } from '../summary.js';
import type { RouteContext } from './context.js';
import { eventId } from './event-ids.js';

/**
 * `GET /batches/:id/events`: Server-Sent Events. The current summary first, then each change, each
 * as `event: summary` with an id derived from the summary (event-ids.ts); the stream ends after the
 * final summary. With `Last-Event-ID`, the current summary is skipped when the client has seen it,
 * and a client that has seen the final one is told 204 (an EventSource then stops reconnecting).
 * Streams of one batch share one subscription (feed.ts).
 */
export async function events(ctx: RouteContext): Promise<Response> {
  const current = await ctx.engine.get(ctx.id); // 404 before any stream is opened
  const lastEventId = ctx.request.headers.get('last-event-id') ?? undefined;
  if (lastEventId !== undefined && isFinalStatus(current.status) && eventId(current) === lastEventId)
    return new Response(null, { status: 204, headers: { 'cache-control': 'no-store' } });
  const body = ctx.feeds.open(ctx.id, lastEventId);
  return new Response(body, {
    status: 200,
    headers: {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // nginx buffers proxied responses unless told not to.
      'x-accel-buffering': 'no',
    },
  });
}
