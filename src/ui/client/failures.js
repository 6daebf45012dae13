import { h, replace } from './dom.js';
import { brief } from './format.js';

/**
 * The failure sample the summary carries (the first 100 failed partitions, messages cut short);
 * every failure in full is in the partition table below it.
 */
export function failureList() {
  const el = h('div', { class: 'failures' });
  let shown = -1;
  return {
    el,
    /** @param {{ failed: number; failures: any[]; errorSummary?: string; error?: any }} summary */
    update(summary) {
      if (summary.failures.length === shown && !summary.error) return; // the sample only grows
      shown = summary.failures.length;
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
                summary.errorSummary ?? '',
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
