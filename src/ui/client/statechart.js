import { h, s } from './dom.js';

const BOX_W = 116;
const BOX_H = 40;
const GAP_X = 56;
const GAP_Y = 14;
const MARGIN = 10;
const START = 24; // room for the initial-state dot on the left
const LANE = 26; // room above the boxes for arrows that skip a column

/**
 * @typedef {{ key: string; status: string; final: boolean; entry: string[]; invoke: string[] }} State
 * @typedef {{ source: string; target: string; event: string; guard?: string; actions: string[] }} Transition
 * @typedef {{ id: string; initial: string; states: State[]; transitions: Transition[] }} Chart
 */

/**
 * Columns by longest path from the initial state over the arrows that lead away from it (to a state
 * farther from the initial one, counted in steps), so those arrows point right and the final states
 * line up in the last column. Arrows back (CONTINUE from paused to processing) and self loops are
 * left out of the layout: with them a cycle would push its states one column further each round.
 *
 * @param {Chart} chart
 * @returns {Map<string, number>} column of each state
 */
export function columns(chart) {
  /** @type {Map<string, number>} steps from the initial state, breadth first */
  const steps = new Map([[chart.initial, 0]]);
  for (let frontier = [chart.initial]; frontier.length > 0; ) {
    const next = [];
    for (const t of chart.transitions)
      if (frontier.includes(t.source) && !steps.has(t.target)) {
        steps.set(t.target, (steps.get(t.source) ?? 0) + 1);
        next.push(t.target);
      }
    frontier = next;
  }
  const forward = chart.transitions.filter(
    (t) => (steps.get(t.target) ?? -1) > (steps.get(t.source) ?? Number.POSITIVE_INFINITY),
  );
  const col = new Map(chart.states.map((st) => [st.key, st.key === chart.initial ? 0 : -1]));
  // Forward arrows only increase the steps, so they form no cycle: as many rounds as states suffice.
  for (let round = 0; round < chart.states.length; round++) {
    let changed = false;
    for (const t of forward) {
      const from = col.get(t.source) ?? -1;
      if (from < 0 || (col.get(t.target) ?? -1) >= from + 1) continue;
      col.set(t.target, from + 1);
      changed = true;
    }
    if (!changed) break;
  }
  const last = Math.max(0, ...col.values());
  // Final states all go last; unreachable ones (none today) go first.
  for (const st of chart.states) {
    if (st.final) col.set(st.key, last);
    else if ((col.get(st.key) ?? -1) < 0) col.set(st.key, 0);
  }
  return col;
}

/**
 * Rows within each column, left to right: ordered by the mean row of the states that lead there
 * (ties in definition order), which keeps most arrows short and level. The rows of column 0 follow
 * the definition.
 *
 * @param {Chart} chart
 * @param {Map<string, number>} col
 * @returns {Map<string, number>} row of each state
 */
export function rows(chart, col) {
  const row = new Map();
  const last = Math.max(0, ...col.values());
  for (let c = 0; c <= last; c++) {
    const here = chart.states.filter((st) => col.get(st.key) === c);
    const weight = (/** @type {State} */ st) => {
      const from = chart.transitions
        .filter((t) => t.target === st.key && t.source !== st.key && row.has(t.source))
        .map((t) => row.get(t.source));
      return from.length === 0 ? Number.POSITIVE_INFINITY : from.reduce((a, b) => a + b, 0) / from.length;
    };
    const weights = new Map(here.map((st) => [st.key, weight(st)]));
    here
      .map((st, i) => ({ st, i }))
      .sort((a, b) => (weights.get(a.st.key) ?? 0) - (weights.get(b.st.key) ?? 0) || a.i - b.i)
      .forEach(({ st }, r) => {
        row.set(st.key, r);
      });
  }
  return row;
}

/**
 * The statechart as SVG boxes and arrows, plus its transitions as a table for reading (and for
 * screen readers, which get little from a drawing). `update(status)` lights the state the batch is in.
 *
 * @param {Chart} chart
 */
export function statechartView(chart) {
  const col = columns(chart);
  const row = rows(chart, col);
  /** @type {Map<string, { x: number; y: number }>} */
  const pos = new Map();
  for (const st of chart.states) {
    pos.set(st.key, {
      x: START + MARGIN + (col.get(st.key) ?? 0) * (BOX_W + GAP_X),
      y: LANE + MARGIN + (row.get(st.key) ?? 0) * (BOX_H + GAP_Y),
    });
  }
  const width = START + 2 * MARGIN + (Math.max(...col.values()) + 1) * (BOX_W + GAP_X) - GAP_X;
  const height = LANE + 2 * MARGIN + (Math.max(...row.values()) + 1) * (BOX_H + GAP_Y) - GAP_Y;

  // One arrow per pair of states, its tooltip listing every transition it stands for.
  /** @type {Map<string, Transition[]>} */
  const pairs = new Map();
  for (const t of chart.transitions) {
    if (t.source === t.target) continue;
    const k = `${t.source}\u0000${t.target}`;
    pairs.set(k, [...(pairs.get(k) ?? []), t]);
  }
  const arrows = [...pairs.values()].map((ts) => {
    const a = /** @type {{ x: number; y: number }} */ (pos.get(ts[0].source));
    const b = /** @type {{ x: number; y: number }} */ (pos.get(ts[0].target));
    return s(
      'path',
      { class: 'edge', d: edgePath(a, b), 'marker-end': 'url(#arrow)' },
      s('title', {}, ts.map(label).join('\n')),
    );
  });

  /** @type {Map<string, SVGElement>} */
  const boxes = new Map();
  const nodes = chart.states.map((st) => {
    const p = /** @type {{ x: number; y: number }} */ (pos.get(st.key));
    const g = s(
      'g',
      { class: st.final ? 'node final' : 'node', 'data-state': st.key },
      s('rect', { x: p.x, y: p.y, width: BOX_W, height: BOX_H, rx: 6 }),
      st.final
        ? s('rect', { class: 'inner', x: p.x + 3, y: p.y + 3, width: BOX_W - 6, height: BOX_H - 6, rx: 4 })
        : null,
      s('text', { x: p.x + BOX_W / 2, y: p.y + 17, 'text-anchor': 'middle', class: 'key' }, st.key),
      s('text', { x: p.x + BOX_W / 2, y: p.y + 31, 'text-anchor': 'middle', class: 'sub' }, st.status),
    );
    boxes.set(st.key, g);
    return g;
  });

  const first = pos.get(chart.initial) ?? { x: START + MARGIN, y: MARGIN };
  const svg = s(
    'svg',
    { class: 'statechart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'Batch statechart' },
    s(
      'defs',
      {},
      s(
        'marker',
        {
          id: 'arrow',
          viewBox: '0 0 10 10',
          refX: 9,
          refY: 5,
          markerWidth: 7,
          markerHeight: 7,
          orient: 'auto',
        },
        s('path', { d: 'M0,0 L10,5 L0,10 z' }),
      ),
    ),
    s('circle', { class: 'start', cx: MARGIN + 4, cy: first.y + BOX_H / 2, r: 5 }),
    s('line', {
      class: 'edge',
      x1: MARGIN + 9,
      y1: first.y + BOX_H / 2,
      x2: first.x,
      y2: first.y + BOX_H / 2,
      'marker-end': 'url(#arrow)',
    }),
    arrows,
    nodes,
  );
  const current = h('p', { class: 'current-state', 'aria-live': 'polite' });
  const table = h(
    'details',
    {},
    h('summary', {}, `All ${chart.transitions.length} transitions`),
    h(
      'table',
      { class: 'transitions' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ['From', 'Event [guard] / actions', 'To'].map((t) => h('th', { scope: 'col' }, t)),
        ),
      ),
      h(
        'tbody',
        {},
        chart.transitions.map((t) =>
          h('tr', {}, h('td', {}, t.source), h('td', {}, label(t)), h('td', {}, t.target)),
        ),
      ),
    ),
  );

  return {
    el: h('div', { class: 'statechart-wrap' }, svg, current, table),
    /** @param {string} status the batch's status: the state of that name is lit */
    update(status) {
      const key =
        chart.states.find((st) => st.key === status.toLowerCase())?.key ??
        chart.states.find((st) => st.status === status)?.key;
      for (const [k, g] of boxes) {
        g.classList.toggle('current', k === key);
        if (k === key) g.setAttribute('aria-current', 'step');
        else g.removeAttribute('aria-current');
      }
      current.textContent = key ? `Current state: ${key} (${status})` : `Status: ${status}`;
      svg.setAttribute('aria-label', `Batch statechart; the batch is in state ${key ?? status}`);
    },
  };
}

/**
 * Neighbouring columns: a straight line, right side to left side. An arrow that skips columns
 * arcs over the top lane, from the top of one box to the top of the other, so it crosses no box
 * in between (the row ordering puts such targets in the top row). Within a column: top to bottom.
 *
 * @param {{ x: number; y: number }} a
 * @param {{ x: number; y: number }} b
 */
function edgePath(a, b) {
  if (b.x === a.x) {
    const down = b.y > a.y;
    const x = a.x + BOX_W / 2;
    return `M${x},${a.y + (down ? BOX_H : 0)} L${x},${b.y + (down ? 0 : BOX_H)}`;
  }
  if (Math.abs(b.x - a.x) <= BOX_W + GAP_X) {
    const [from, to] = b.x > a.x ? [a.x + BOX_W, b.x] : [a.x, b.x + BOX_W];
    return `M${from},${a.y + BOX_H / 2} L${to},${b.y + BOX_H / 2}`;
  }
  const x1 = a.x + BOX_W / 2;
  const x2 = b.x + BOX_W / 2;
  return `M${x1},${a.y} C${x1},${MARGIN / 2} ${x2},${MARGIN / 2} ${x2},${b.y}`;
}

/** `event [guard] / actions`, as in docs/statechart.md. @param {Transition} t */
function label(t) {
  let text = t.event;
  if (t.guard) text += ` [${t.guard}]`;
  if (t.actions.length > 0) text += ` / ${t.actions.join(', ')}`;
  return text;
}
