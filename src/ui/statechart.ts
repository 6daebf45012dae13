import type { AnyStateMachine } from 'xstate';
import { actionNames, eventLabel, guardName } from '../machines/labels.js';

/**
 * A machine's top-level states and transitions as plain JSON, for the dashboard to draw. Read from
 * the machine definition the engine runs (the same walk as scripts/graph.mjs), so the picture in the
 * dashboard cannot drift from the code.
 */
export interface StatechartJson {
  id: string;
  initial: string;
  states: StatechartState[];
  transitions: StatechartTransition[];
}

export interface StatechartState {
  key: string;
  /** The public status reported while the machine is in this state (`statusOf`). */
  status: string;
  final: boolean;
  entry: string[];
  invoke: string[];
}

export interface StatechartTransition {
  source: string;
  /** Same as `source` for a transition that only changes the context. */
  target: string;
  /** `ADMIT`, `always`, `after backoff`, `FINALIZED`, `FINALIZE.FAILED`. */
  event: string;
  guard?: string;
  actions: string[];
}

/** The shapes read off XState's state nodes; XState types them loosely (`UnknownAction`, guards). */
type AnyNode = AnyStateMachine['root'];
type AnyTransition = NonNullable<AnyNode['always']>[number];

/**
 * @example
 * ```ts
 * const chart = statechartJson(batchMachine, statusOf);
 * chart.states.map((s) => s.key); // ['queued', 'processing', 'cancelling', 'finalizing', ...]
 * ```
 */
export function statechartJson(machine: AnyStateMachine, statusOf: (key: string) => string): StatechartJson {
  const root = machine.root;
  const nodes = Object.values(root.states) as AnyNode[];
  return {
    id: machine.id,
    initial: root.initial.target[0]?.key ?? '',
    states: nodes.map((node) => ({
      key: node.key,
      status: statusOf(node.key),
      final: node.type === 'final',
      entry: actionNames(node.entry),
      invoke: node.invoke.map((inv) => String(inv.src)),
    })),
    transitions: nodes.flatMap((node) => {
      const all: AnyTransition[] = [...[...node.transitions.values()].flat(), ...(node.always ?? [])];
      return all.flatMap((t) => {
        const targets = t.target && t.target.length > 0 ? t.target.map((n) => n.key) : [node.key];
        const guard = guardName(t.guard);
        return targets.map((target) => ({
          source: node.key,
          target,
          event: eventLabel(t.eventType),
          ...(guard === undefined ? {} : { guard }),
          actions: actionNames(t.actions),
        }));
      });
    }),
  };
}
