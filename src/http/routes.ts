import { cancel, list, operation, prune, read, submit } from './batches.js';
import type { RouteContext } from './context.js';
import { events } from './events.js';
import { partitions } from './partitions.js';
import type { Action, HandledEngine, OptionalOperations } from './types.js';

/** One method of one route: what it asks `authorize` for, and what it does. */
export interface Endpoint {
  action: Action;
  run: (ctx: RouteContext) => Promise<Response>;
}

/** A matched path: its endpoints by method, and the batch id in it ('' when none). */
export interface Match {
  methods: Partial<Record<string, Endpoint>>;
  id: string;
}

/**
 * `needs`: the engine methods that must all exist. Pause and resume are one feature and are routed
 * together, so that a `resume` of some other meaning alone is never mistaken for it.
 */
const BATCH_OPERATIONS: Record<
  string,
  { method: keyof OptionalOperations; action: Action; needs: Array<keyof OptionalOperations> }
> = {
  pause: { method: 'pause', action: 'pause', needs: ['pause', 'resume'] },
  resume: { method: 'resume', action: 'resume', needs: ['pause', 'resume'] },
  'retry-failed': { method: 'retryFailed', action: 'retry', needs: ['retryFailed'] },
};

/**
 * The API's routes, matched on the path after the base path. Pause, resume and retry-failed exist
 * only when the engine has the methods (a later engine version): otherwise their paths are 404.
 * `/metrics` is matched by the handler, which owns the registry.
 */
export function matchRoute(path: string, engine: HandledEngine): Match | undefined {
  const segments = path.split('/').slice(1);
  if (segments[0] !== 'batches') return undefined;
  if (segments.length === 1)
    return {
      id: '',
      methods: {
        GET: { action: 'list', run: list },
        POST: { action: 'submit', run: submit },
        ...(typeof engine.prune === 'function' ? { DELETE: { action: 'prune', run: prune } } : {}),
      },
    };
  let id: string;
  try {
    id = decodeURIComponent(segments[1]!);
  } catch {
    return undefined; // a malformed %-escape names no batch
  }
  if (id === '') return undefined;
  if (segments.length === 2) return { id, methods: { GET: { action: 'read', run: read } } };
  if (segments.length !== 3) return undefined;
  const tail = segments[2]!;
  if (tail === 'partitions') return { id, methods: { GET: { action: 'read', run: partitions } } };
  if (tail === 'events') return { id, methods: { GET: { action: 'read', run: events } } };
  if (tail === 'cancel') return { id, methods: { POST: { action: 'cancel', run: cancel } } };
  const op = BATCH_OPERATIONS[tail];
  if (op?.needs.every((m) => typeof engine[m] === 'function'))
    return { id, methods: { POST: { action: op.action, run: operation(op.method) } } };
  return undefined;
}
