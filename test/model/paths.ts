import { getAdjacencyMap, getShortestPaths } from '@xstate/graph';
import {
  type AnyStateMachine,
  type AnyTransitionDefinition,
  createActor,
  createEmptyActor,
  type EventFromLogic,
  fromTransition,
  type InspectionEvent,
  type SnapshotFrom,
} from 'xstate';
import type { Model } from './model.js';

/** One step of a path: the event, and the model's state after it (a full macrostep). */
export interface ModelStep<M extends AnyStateMachine> {
  event: EventFromLogic<M>;
  state: SnapshotFrom<M>;
  /** Every state node id entered or left on the way, and every transition taken (for coverage). */
  visited: Set<string>;
  transitions: AnyTransitionDefinition[];
}

export interface ModelPath<M extends AnyStateMachine> {
  initial: SnapshotFrom<M>;
  steps: ModelStep<M>[];
  /** "ADMIT → PARTITIONS.LOADED → p0 succeeded → …" */
  description: string;
}

/**
 * Paths that cover every transition the environment can trigger: for every edge (state, event) of
 * the model's graph (@xstate/graph `getAdjacencyMap`), the shortest path to that state
 * (@xstate/graph `getShortestPaths`) followed by the event. Paths that are a prefix of another path
 * are dropped: the longer one checks the same steps. Each kept path is then replayed through the
 * machine, so every snapshot it holds is the machine's own.
 */
export function generatePaths<M extends AnyStateMachine>(model: Model<M>): ModelPath<M>[] {
  const logic = isolated(model.machine);
  const options = {
    input: model.input as never,
    events: (s: SnapshotFrom<M>) => model.events(s),
    serializeState: (s: SnapshotFrom<M>) => model.serialize(s),
  };
  const adjacency = getAdjacencyMap(logic, options as never) as unknown as Record<
    string,
    { transitions: Record<string, { event: EventFromLogic<M> }> }
  >;
  const shortest = getShortestPaths(logic, options as never);
  // @xstate/graph paths start with an `xstate.init` step; each later step holds the event taken.
  const prefixOf = new Map(
    shortest.map((p) => [
      model.serialize(p.state as SnapshotFrom<M>),
      p.steps.slice(1).map((s) => s.event as EventFromLogic<M>),
    ]),
  );
  const sequences: EventFromLogic<M>[][] = [];
  for (const [key, { transitions }] of Object.entries(adjacency)) {
    const prefix = prefixOf.get(key);
    if (!prefix) throw new Error(`no shortest path to ${key}`);
    for (const { event } of Object.values(transitions)) sequences.push([...prefix, event]);
  }
  return withoutPrefixes(sequences).map((events) => replay(model, events));
}

function withoutPrefixes<E>(sequences: E[][]): E[][] {
  const text = sequences.map((s) => s.map((e) => JSON.stringify(e)));
  const order = sequences.map((_, i) => i).sort((a, b) => text[b]!.length - text[a]!.length);
  const kept: number[] = [];
  for (const i of order) {
    const isPrefix = kept.some((k) => text[i]!.every((e, n) => text[k]![n] === e));
    if (!isPrefix) kept.push(i);
  }
  // Stable, readable order: by the original order of the sequences.
  return kept.sort((a, b) => a - b).map((i) => sequences[i]!);
}

/**
 * An inert actor scope with its own actor system, optionally inspected. The lanes are spawned with
 * a `systemId`, and a system refuses a second actor under one id: every transition computed
 * outside a running actor (path generation, replay) gets a fresh system. Its actor has a parent,
 * for the lanes' `sendParent`.
 */
export function inertScope(inspect?: (event: InspectionEvent) => void) {
  // A lane reports to its parent (sendParent needs one to resolve); nothing is ever delivered.
  const parent = createEmptyActor();
  const self = createActor(
    fromTransition((s: undefined) => s, undefined),
    { parent } as never,
  );
  if (inspect) self.system.inspect(inspect);
  return {
    self,
    defer: () => {},
    id: '',
    logger: () => {},
    sessionId: '',
    stopChild: () => {},
    system: self.system,
    emit: () => {},
    actionExecutor: () => {},
  } as never;
}

/** The same machine, whose `transition` runs each step in a fresh inert scope. */
function isolated<M extends AnyStateMachine>(machine: M): M {
  return Object.create(machine, {
    transition: {
      value: (snapshot: unknown, event: unknown) =>
        machine.transition(snapshot as never, event as never, inertScope()),
    },
  }) as M;
}

/**
 * Run `events` through the model's machine in inert scopes that record every microstep (the
 * `@xstate.microstep` inspection event carries the transitions taken).
 */
export function replay<M extends AnyStateMachine>(
  model: Model<M>,
  events: EventFromLogic<M>[],
): ModelPath<M> {
  let visited = new Set<string>();
  let transitions: AnyTransitionDefinition[] = [];
  const record = (snapshot: unknown) => {
    for (const node of (snapshot as { _nodes: { id: string }[] })._nodes) visited.add(node.id);
  };
  const scope = () =>
    inertScope((ev) => {
      if (ev.type !== '@xstate.microstep') return;
      record(ev.snapshot);
      transitions.push(...ev._transitions);
    });
  let state = model.machine.getInitialSnapshot(scope(), model.input) as SnapshotFrom<M>;
  record(state);
  const initial = state;
  const initialVisited = visited;
  const steps: ModelStep<M>[] = [];
  for (const event of events) {
    visited = new Set();
    transitions = [];
    state = model.machine.transition(state, event, scope()) as SnapshotFrom<M>;
    steps.push({ event, state, visited, transitions });
  }
  if (steps[0]) for (const id of initialVisited) steps[0].visited.add(id);
  return { initial, steps, description: steps.map((s) => label(s.event)).join(' → ') || '(initial)' };
}

/** The fields of the events this suite names. */
interface Labelled {
  type: string;
  lane?: number;
  loaded?: number;
  key?: string;
  retryable?: boolean;
  outcomes?: { key: string; status: string; attempts: number }[];
  indexes?: number[];
  answers?: { ok: boolean }[];
}

/** A short name for an event in test titles. */
export function label(event: { type: string }): string {
  const e = event as Labelled;
  switch (e.type) {
    case 'PARTITIONS.SETTLED': {
      const o = e.outcomes ?? [];
      return `${o.map((x) => x.key).join('+')} ${o[0]?.status} (lane ${e.lane}, attempt ${o[0]?.attempts})`;
    }
    case 'PARTITIONS.RETURNED':
      return `lane ${e.lane} returned ${e.indexes?.join('+')} (thread died)`;
    case 'WORK.ANSWERED':
      return `WORK.ANSWERED ${e.answers?.map((a) => (a.ok ? 'ok' : 'failed')).join('+')}`;
    case 'PARTITION.CANCELLED':
      return `lane ${e.lane} cancelled`;
    case 'PARTITIONS.LOADED':
      return `loaded ${e.loaded}`;
    case 'WORK.FAILED':
      return e.retryable ? 'WORK.FAILED retryable' : 'WORK.FAILED for good';
    case 'RUN':
      return `RUN ${e.key}`;
    default:
      if (e.type.startsWith('xstate.after.')) return `after ${e.type.split('.')[2]}`;
      if (e.type.startsWith('xstate.done.actor.')) return `${e.type.split('.')[3]} done`;
      if (e.type.startsWith('xstate.error.actor.')) return `${e.type.split('.')[3]} error`;
      return e.type;
  }
}
