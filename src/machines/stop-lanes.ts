import { type AnyActorRef, stopChild } from 'xstate';

/**
 * Stop every child of the batch actor (its lanes) at the cost of one copy of its children map
 * instead of one copy per child (docs/architecture.md, "Lanes."; docs/xstate-upstream.md).
 *
 * When an actor reaches a final state, XState stops its children with one `stopChild` each, and
 * each `stopChild` copies the children map to drop one entry: O(children²), 1.2–1.5 s for 1,024
 * lanes. This action, on the entry of each final state, runs first: it removes all children from
 * the snapshot at once, then hands XState its own `stopChild` for each lane still running, which
 * now resolves against an empty map (O(1)) and stops the lane exactly as before (unregistered from
 * the system, stopped after the transition, one `xstate.stopChild` action per lane for the
 * inspector). Lanes that retired (reached their own final state) have stopped already. XState's own
 * stop at the final state then finds no children left.
 *
 * XState has no public action that stops several children at once, so this is a built-in action:
 * a function with `resolve`, which XState's action resolution calls with the snapshot and which
 * returns `[nextSnapshot, params, actionsToResolveNext]` (the way `stopChild`, `assign` and
 * `spawnChild` are built). Should XState stop calling `resolve`, the function runs as a plain
 * action that does nothing and XState's quadratic stop takes over: slower, never wrong.
 * test/machines/stop-lanes.test.ts checks that `resolve` still runs.
 */
export function stopLanes(): void {}

type MachineSnapshotLike = { children: Record<string, AnyActorRef | undefined> };

stopLanes.type = 'partita.stopLanes';
stopLanes.resolve = (
  _actorScope: unknown,
  snapshot: MachineSnapshotLike,
): [MachineSnapshotLike, undefined, ReturnType<typeof stopChild>[] | undefined] => {
  const children = Object.values(snapshot.children).filter((c): c is AnyActorRef => c !== undefined);
  if (children.length === 0) return [snapshot, undefined, undefined];
  // Retired lanes (done) stopped themselves and left the system already: only the others need a stop.
  const running = children.filter((child) => child.getSnapshot().status === 'active');
  // A shallow copy is what XState's own snapshot clone makes: the same fields, children replaced.
  return [{ ...snapshot, children: {} }, undefined, running.map((child) => stopChild(child))];
};
