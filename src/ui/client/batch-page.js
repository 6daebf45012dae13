import { actionBar } from './actions.js';
import { progressChart } from './chart.js';
import { h, replace } from './dom.js';
import { failureList } from './failures.js';
import { count, isFinal, time } from './format.js';
import { partitionTable } from './partitions.js';
import { progressBar, statusBadge } from './progress.js';
import { statechartView } from './statechart.js';
import { watch } from './watch.js';

const COUNTS = /** @type {const} */ (['total', 'succeeded', 'failed', 'running', 'pending']);

/**
 * One batch: status, actions, counts, progress over time, the statechart with its state lit,
 * failures and partitions. Everything that changes is fed by the batch's event stream.
 *
 * @param {{ base: string; api: import('./api.js').Api; root: HTMLElement; id: string; chart: Promise<any> }} ctx
 * @returns {() => void} dispose
 */
export function batchPage({ base, api, root, id, chart }) {
  document.title = `Batch ${id} · partita`;
  let disposed = false;
  /** @type {(() => void) | undefined} */
  let close;
  const message = h('p', { class: 'message', role: 'status', 'aria-live': 'polite' });
  /** @param {string} text @param {boolean} [error] */
  const say = (text, error = false) => {
    message.textContent = text;
    message.classList.toggle('error', error);
  };
  const heading = h('h1', { tabindex: -1 }, `Batch ${id} `);
  const top = h('div', { class: 'heading' }, heading);
  replace(root, h('p', {}, h('a', { href: `${base}/ui`, 'data-nav': true }, '← All batches')), top, message);

  void load();
  return () => {
    disposed = true;
    close?.();
  };

  async function load() {
    let first;
    try {
      first = await api.get(id);
    } catch (err) {
      if (!disposed) say(`Could not load batch ${id}: ${/** @type {Error} */ (err).message}`, true);
      return;
    }
    if (disposed) return;
    const status = h('span', {}, statusBadge(first.status));
    heading.append(status);
    const meta = h('p', { class: 'meta' });
    const bar = progressBar(`Progress of batch ${id}`);
    const cells = Object.fromEntries(COUNTS.map((k) => [k, h('dd', { 'data-count': k })]));
    const plot = progressChart(api.skew());
    const failures = failureList();
    const partitions = partitionTable(api, id);
    const actions = actionBar(api, id, (s) => apply(s), say);
    const diagram = h('div', {}, h('p', { class: 'muted' }, 'Loading the statechart…'));
    /** @type {ReturnType<typeof statechartView> | undefined} */
    let states;
    let last = first;

    /** @param {any} summary */
    function apply(summary) {
      const ended = !isFinal(last.status) && isFinal(summary.status);
      last = summary;
      replace(status, statusBadge(summary.status));
      replace(
        meta,
        `Job ${summary.job} · created `,
        h('time', { datetime: summary.createdAt }, time(summary.createdAt)),
        summary.startedAt
          ? [' · started ', h('time', { datetime: summary.startedAt }, time(summary.startedAt))]
          : '',
        summary.finishedAt
          ? [' · finished ', h('time', { datetime: summary.finishedAt }, time(summary.finishedAt))]
          : '',
        summary.priority ? ` · priority ${summary.priority}` : '',
        summary.run ? ` · run ${summary.run} (failed partitions retried)` : '',
      );
      bar.update(summary);
      for (const k of COUNTS) cells[k].textContent = count(summary[k]);
      plot.add(summary);
      failures.update(summary);
      actions.update(summary.status);
      states?.update(summary.status);
      if (ended) void partitions.reload(); // every outcome is stored now
      // After retry-failed or resume the batch runs again: follow it again.
      if (!isFinal(summary.status) && !close) follow();
    }

    function follow() {
      close = watch(
        api.eventsUrl(id),
        (summary) => {
          if (isFinal(summary.status)) close = undefined;
          apply(summary);
        },
        () => {
          close = undefined;
          say('Live updates stopped: the event stream could not be opened.', true);
        },
      );
    }

    // Added around what is on screen, not redrawn: the heading may have the focus, and an element
    // taken out of the page loses it.
    top.append(actions.el);
    top.after(meta);
    root.append(
      h(
        'div',
        { class: 'grid' },
        h(
          'section',
          { 'aria-labelledby': 'h-progress' },
          h('h2', { id: 'h-progress' }, 'Progress'),
          bar.el,
          h(
            'dl',
            { class: 'counts' },
            COUNTS.map((k) => h('div', {}, h('dt', {}, k[0].toUpperCase() + k.slice(1)), cells[k])),
          ),
          plot.el,
        ),
        h(
          'section',
          { 'aria-labelledby': 'h-statechart' },
          h('h2', { id: 'h-statechart' }, 'Statechart'),
          diagram,
        ),
      ),
      h(
        'section',
        { 'aria-labelledby': 'h-failures' },
        h('h2', { id: 'h-failures' }, 'Failures'),
        failures.el,
      ),
      h(
        'section',
        { 'aria-labelledby': 'h-partitions' },
        h(
          'div',
          { class: 'heading' },
          h('h2', { id: 'h-partitions' }, 'Partitions'),
          h('button', { type: 'button', onclick: () => partitions.reload() }, 'Refresh partitions'),
        ),
        partitions.el,
      ),
    );
    apply(first);
    void partitions.reload();
    chart.then(
      (c) => {
        if (disposed) return;
        states = statechartView(c);
        replace(diagram, states.el);
        states.update(last.status);
      },
      (err) => replace(diagram, h('p', { class: 'error' }, `No statechart: ${err.message}`)),
    );
  }
}
