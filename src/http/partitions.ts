import type { PartitionStatus, PartitionView } from '../store/store.js';
import type { RouteContext } from './context.js';
import { decodePartitionCursor, encodePartitionCursor } from './cursor.js';
import { includes, invalid, limitParam } from './query.js';
import { json } from './respond.js';
import type { Page } from './types.js';
import { partitionView } from './views.js';

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;
const STATUSES: readonly PartitionStatus[] = ['pending', 'succeeded', 'failed'];

/**
 * `GET /batches/:id/partitions?status=&cursor=&limit=&include=result`, in index order. Payloads
 * are never shown (engine.partitions does not return them); results only with `include=result`.
 *
 * engine.partitions has no starting point, so a page iterates from the first partition and skips
 * those at or before the cursor's index: a deep page of a huge batch costs a scan of what precedes
 * it. Leaving the loop early closes the store's cursor.
 */
export async function partitions(ctx: RouteContext): Promise<Response> {
  const params = ctx.url.searchParams;
  const limit = limitParam(params, DEFAULT_LIMIT, MAX_LIMIT);
  const withResult = includes(params, 'result', ['result']);
  const status = params.get('status') || undefined;
  if (status !== undefined && !STATUSES.includes(status as PartitionStatus))
    throw invalid('status', `expected ${STATUSES.join(', ')}`);
  const after = decodePartitionCursor(params.get('cursor'));
  const items: PartitionView[] = [];
  let more = false;
  const filter = status ? { status: status as PartitionStatus } : {};
  for await (const p of ctx.engine.partitions(ctx.id, filter)) {
    if (p.index <= after) continue;
    if (items.length === limit) {
      more = true;
      break;
    }
    items.push(partitionView(p, withResult));
  }
  const page: Page<PartitionView> = { items };
  const last = items.at(-1);
  if (more && last) page.nextCursor = encodePartitionCursor(last.index);
  return json(200, page);
}
