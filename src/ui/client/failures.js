import { h, replace } from './dom.js';
import { brief, count } from './format.js';

/**
 * The failure sample the summary carries (the first 100 failed partitions, messages cut short);
 * every failure in full is in the partition table below it.
 */
export function failureList() {
  const el = h('div', { class: 'failures' });
  let shown = '';
  return {
    el,
    /** @param {{ failed: number; total?: number; failures: any[]; errorSummary?: string; error?: any }} summary */
    update(summary) {
      // Redrawn when the sample or the count changes (the sample stops growing at 100; the count does not).
      const key = `${summary.failures.length}/${summary.failed}/${summary.error ? 1 : 0}`;
      if (key === shown) return;
      shown = key;
      replace(
        el,
        summary.error
          ? h('p', { class: 'error' }, `${summary.error.name}: ${brief(summary.error.message, 400)}`)
          : null,
        summary.failures.length === 0
          ? h('p', { class: 'muted' }, 'No partition has failed.')
          : [
              h(
                'p',
                {},
                summary.failed > 0
                  ? `${count(summary.failed)} of ${count(summary.total ?? 0)} partitions failed`
                  : '',
                summary.failed > summary.failures.length
                  ? ` (the first ${summary.failures.length} are listed)`
                  : '',
              ),
              h(
                'table',
                {},
                h('caption', { class: 'visually-hidden' }, 'Failed partitions'),
                h(
                  'thead',
                  {},
                  h(
                    'tr',
                    {},
                    ['Key', 'Error', 'Attempts'].map((t) => h('th', { scope: 'col' }, t)),
                  ),
                ),
                h(
                  'tbody',
                  {},
                  summary.failures.map((f) =>
                    h(
                      'tr',
                      {},
                      h('th', { scope: 'row' }, f.key),
                      h(
                        'td',
                        {},
                        `${f.error.name}${f.error.code ? ` (${f.error.code})` : ''}: ${f.error.message}`,
                      ),
                      h('td', { class: 'num' }, f.attempts),
                    ),
                  ),
                ),
              ),
            ],
      );
    },
  };
}
