import { h } from './dom.js';
import { isFinal } from './format.js';

/**
 * The operator's buttons and when each is offered. pause, resume and retry-failed are optional
 * routes of partita/http: a server without one answers 404, and the button is not offered again
 * for the rest of the session.
 */
const ACTIONS = [
  {
    name: 'pause',
    label: 'Pause',
    optional: true,
    /** @param {string} s */ when: (s) => s === 'PROCESSING',
  },
  {
    name: 'resume',
    label: 'Resume',
    optional: true,
    /** @param {string} s */ when: (s) => s === 'PAUSED',
  },
  {
    name: 'retry-failed',
    label: 'Retry failed partitions',
    optional: true,
    /** @param {string} s */ when: (s) => s === 'PARTIAL' || s === 'FAILED',
  },
  {
    name: 'cancel',
    label: 'Cancel batch',
    optional: false,
    /** @param {string} s */ when: (s) => !isFinal(s),
  },
];

/** Optional routes this server answered 404 for. */
const missing = new Set();

/**
 * @param {import('./api.js').Api} api
 * @param {string} id
 * @param {(summary: any) => void} onSummary an action's answer, when it is a summary
 * @param {(text: string, error?: boolean) => void} say
 */
export function actionBar(api, id, onSummary, say) {
  let status = '';
  const buttons = ACTIONS.map((action) => {
    const button = h(
      'button',
      {
        type: 'button',
        class: action.name === 'cancel' ? 'danger' : undefined,
        'data-action': action.name,
        hidden: true,
        onclick: () => run(action, button),
      },
      action.label,
    );
    return { action, button };
  });

  /**
   * @param {(typeof ACTIONS)[number]} action
   * @param {HTMLElement} button
   */
  async function run(action, button) {
    // A native confirm: keyboard and screen-reader friendly, and cancelling cannot be undone.
    if (action.name === 'cancel' && !confirm(`Cancel batch ${id}? Partitions in flight are aborted.`)) return;
    button.setAttribute('disabled', '');
    button.setAttribute('aria-busy', 'true');
    say(`${action.label}…`);
    try {
      const answer = await api.action(id, action.name);
      say(`${action.label}: done.`);
      if (answer && typeof answer === 'object' && 'status' in answer) onSummary(answer);
    } catch (err) {
      const e = /** @type {import('./api.js').ApiError} */ (err);
      // NO_ROUTE: the server has no such route (a batch that is gone would be NOT_FOUND).
      if (action.optional && e.status === 404 && (e.code === undefined || e.code === 'NO_ROUTE')) {
        missing.add(action.name);
        say(`${action.label} is not available on this server.`, true);
        show();
      } else say(`${action.label} failed: ${e.message}`, true);
    } finally {
      button.removeAttribute('disabled');
      button.removeAttribute('aria-busy');
    }
  }

  function show() {
    for (const { action, button } of buttons)
      button.hidden = missing.has(action.name) || !action.when(status);
  }

  return {
    el: h(
      'div',
      { class: 'actions', role: 'group', 'aria-label': 'Batch actions' },
      buttons.map((b) => b.button),
    ),
    /** @param {string} next */
    update(next) {
      status = next;
      show();
    },
  };
}
