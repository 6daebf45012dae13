import { s } from './dom.js';
import { duration, percent } from './format.js';

const W = 320;
const H = 120;
const PAD = { left: 34, right: 8, top: 8, bottom: 20 };

/**
 * Progress over time, a line fed by the summaries the page receives (the server keeps no history).
 * The batch's start is known (startedAt, progress 0) and so is its end (finishedAt), so even a
 * batch opened after it ended draws a line.
 *
 * @param {number} skew the server's clock minus this browser's, in ms
 */
export function progressChart(skew) {
  /** @type {{ t: number; p: number }[]} */
  const points = [];
  const line = s('polyline', { class: 'chart-line', points: '' });
  const end = s('text', { x: W - PAD.right, y: H - 4, 'text-anchor': 'end' }, '');
  const el = s(
    'svg',
    {
      class: 'chart',
      viewBox: `0 0 ${W} ${H}`,
      role: 'img',
      'aria-label': 'Progress over time: no data yet',
    },
    s('line', { class: 'axis', x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom }),
    s('line', { class: 'axis', x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom }),
    s('line', { class: 'gridline', x1: PAD.left, y1: PAD.top, x2: W - PAD.right, y2: PAD.top }),
    s('text', { x: PAD.left - 4, y: PAD.top + 4, 'text-anchor': 'end' }, '100%'),
    s('text', { x: PAD.left - 4, y: H - PAD.bottom, 'text-anchor': 'end' }, '0%'),
    s('text', { x: PAD.left, y: H - 4 }, '0 s'),
    end,
    line,
  );

  /** @param {number} t @param {number} p */
  function add(t, p) {
    const last = points.at(-1);
    // Two clocks meet here (the server's startedAt, this browser's arrival times, matched to within
    // a second): keep time moving forward and progress from dropping, whatever they say.
    if (last && t <= last.t) t = last.t + 1;
    points.push({ t, p: Math.max(p, last?.p ?? 0) });
  }

  function draw() {
    if (points.length === 0) return;
    const t0 = points[0].t;
    const span = Math.max(1, points.at(-1).t - t0);
    const x = (/** @type {number} */ t) => PAD.left + ((t - t0) / span) * (W - PAD.left - PAD.right);
    const y = (/** @type {number} */ p) => H - PAD.bottom - p * (H - PAD.top - PAD.bottom);
    line.setAttribute('points', points.map((pt) => `${x(pt.t).toFixed(1)},${y(pt.p).toFixed(1)}`).join(' '));
    end.textContent = duration(span);
    const last = points.at(-1);
    el.setAttribute(
      'aria-label',
      `Progress over time: ${percent({ progress: last.p })} % after ${duration(last.t - t0)}`,
    );
  }

  return {
    el,
    /** @param {{ status: string; progress: number; startedAt?: string; finishedAt?: string }} summary */
    add(summary) {
      if (!summary.startedAt) return; // still queued: nothing to draw yet
      if (points.length === 0) add(Date.parse(summary.startedAt), 0);
      const at = summary.finishedAt ? Date.parse(summary.finishedAt) : Date.now() + skew;
      add(at, summary.progress);
      draw();
    },
  };
}
