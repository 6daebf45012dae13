/**
 * How the machines' transitions read for people: the generated statechart (docs/statechart.md, the
 * CLI's `graph`) and the dashboard's statechart both label guards, actions and events this way.
 */

/** A guard as written in the machine: `allSettled`, `and(isCurrent, canRetry)`. */
export function guardName(guard: unknown): string | undefined {
  if (!guard) return undefined;
  if (typeof guard === 'string') return guard;
  const g = guard as { type?: string; name?: string; guards?: unknown[] };
  if (typeof guard === 'object' && g.type) return g.type;
  if (typeof guard === 'function' && Array.isArray(g.guards))
    return `${g.name || 'guard'}(${g.guards.map(guardName).join(', ')})`;
  return g.name || 'guard';
}

/** Named actions only; XState's own (assign, raise, sendTo) say nothing a reader needs here. */
export function actionNames(actions: readonly unknown[]): string[] {
  return actions
    .map((a) =>
      typeof a === 'string' ? a : ((a as { type?: string })?.type ?? (a as { name?: string })?.name),
    )
    .filter((name): name is string => typeof name === 'string' && name !== '' && !name.startsWith('xstate.'));
}

/** How an event reads on an arrow: `ADMIT`, `after backoff`, `FINALIZED`, `always` (an invoked actor's done event: `<id> done`). */
export function eventLabel(eventType: string): string {
  if (eventType === '') return 'always';
  const after = /^xstate\.after\.([^.]+)\./.exec(eventType);
  if (after) return `after ${after[1]}`;
  const done = /^xstate\.done\.actor\.(.+)$/.exec(eventType);
  if (done) return `${done[1]} done`;
  const error = /^xstate\.error\.actor\.(.+)$/.exec(eventType);
  if (error) return `${error[1]} error`;
  return eventType;
}
