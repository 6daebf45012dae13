import { h } from './dom.js';
import { count, percent, settled } from './format.js';

/**
 * A progress bar for one batch: succeeded and failed partitions as two segments of one bar, so a
 * batch that is 100 % settled but half failed does not look green. A div with role="progressbar"
 * (not <progress>, which draws one segment only); aria-valuetext says it all in words.
 *
 * @param {string} label accessible name, e.g. "Progress of batch b-42"
 */
export function progressBar(label) {
  const ok = h('span', { class: 'bar-ok' });
  const bad = h('span', { class: 'bar-bad' });
  const bar = h(
    'div',
    {
      class: 'bar',
      role: 'progressbar',
      'aria-label': label,
      'aria-valuemin': 0,
      'aria-valuemax': 100,
      'aria-valuenow': 0,
    },
    ok,
    bad,
  );
  const text = h('span', { class: 'bar-text' });
  const el = h('div', { class: 'progress' }, bar, text);
  return {
    el,
    /** @param {{ total: number; succeeded: number; failed: number; progress: number }} summary */
    update(summary) {
      const total = summary.total || 1;
      // Widths through the CSSOM: allowed by the CSP, unlike a style attribute.
      ok.style.width = `${(100 * summary.succeeded) / total}%`;
      bad.style.width = `${(100 * summary.failed) / total}%`;
      const pct = percent(summary);
      bar.setAttribute('aria-valuenow', String(pct));
      const failed = summary.failed > 0 ? `, ${count(summary.failed)} failed` : '';
      bar.setAttribute(
        'aria-valuetext',
        `${pct} %: ${count(settled(summary))} of ${count(summary.total)} partitions settled${failed}`,
      );
      text.textContent = `${pct} % · ${count(settled(summary))}/${count(summary.total)}`;
    },
  };
}

/**
 * A status badge; its class gives the colour, its text the status (colour is never the only cue).
 * @param {string} status
 */
export function statusBadge(status) {
  const el = h('span', { class: `status status-${status.toLowerCase()}` }, status);
  return el;
}
