import type { AnyStateMachine, AnyStateNode, AnyTransitionDefinition } from 'xstate';
import type { ModelPath } from './paths.js';

/**
 * State and transition coverage of a set of paths, counted against the machine definition itself:
 * every state node under `machine.root` (the root included), and for each node its `transitions`
 * (`on`, `after`, invoke `onDone` / `onError`, all kept in that map by XState) and its `always`.
 * A transition is named `source#event#n`, n being its place among the candidates for that event.
 */
export interface Coverage {
  machine: string;
  states: { all: string[]; covered: string[] };
  transitions: { all: string[]; covered: string[] };
  paths: number;
}

export function stateNodes(machine: AnyStateMachine): AnyStateNode[] {
  const out: AnyStateNode[] = [];
  const walk = (node: AnyStateNode) => {
    out.push(node);
    for (const child of Object.values(node.states)) walk(child);
  };
  walk(machine.root);
  return out;
}

export function transitionName(t: AnyTransitionDefinition): string {
  const source = t.source;
  const list = t.eventType === '' ? (source.always ?? []) : (source.transitions.get(t.eventType) ?? []);
  const n = list.indexOf(t);
  if (n < 0)
    throw new Error(`transition ${source.id} on "${t.eventType}" is not in its state node's definition`);
  return `${source.id}#${t.eventType || 'always'}#${n}`;
}

export function allTransitions(machine: AnyStateMachine): string[] {
  const names = new Set<string>();
  for (const node of stateNodes(machine)) {
    for (const list of node.transitions.values()) for (const t of list) names.add(transitionName(t));
    for (const t of node.always ?? []) names.add(transitionName(t));
    for (const t of node.after) names.add(transitionName(t));
  }
  return [...names].sort();
}

export function coverageOf(
  name: string,
  machine: AnyStateMachine,
  paths: ModelPath<AnyStateMachine>[],
): Coverage {
  const states = new Set<string>();
  const transitions = new Set<string>();
  for (const path of paths) {
    for (const node of (path.initial as unknown as { _nodes: AnyStateNode[] })._nodes) states.add(node.id);
    for (const step of path.steps) {
      for (const id of step.visited) states.add(id);
      for (const t of step.transitions) transitions.add(transitionName(t));
    }
  }
  const allStates = stateNodes(machine)
    .map((n) => n.id)
    .sort();
  return {
    machine: name,
    states: { all: allStates, covered: allStates.filter((s) => states.has(s)) },
    transitions: { all: allTransitions(machine), covered: [...transitions].sort() },
    paths: paths.length,
  };
}

/** `model coverage batch: states 9/9, transitions 18/18, paths 57` */
export function coverageLine(c: Coverage): string {
  return `model coverage ${c.machine}: states ${c.states.covered.length}/${c.states.all.length}, transitions ${c.transitions.covered.length}/${c.transitions.all.length}, paths ${c.paths}`;
}

export function uncovered(c: Coverage): { states: string[]; transitions: string[] } {
  return {
    states: c.states.all.filter((s) => !c.states.covered.includes(s)),
    transitions: c.transitions.all.filter((t) => !c.transitions.covered.includes(t)),
  };
}
