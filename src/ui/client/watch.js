import { isFinal } from './format.js';

/**
 * Follow a batch over Server-Sent Events (`event: summary`): the current summary first, then every
 * change. Closed here on the final summary: the server ends the stream then, and an EventSource
 * left open would reconnect and be told the final summary again, forever.
 *
 * @param {string} url GET /batches/:id/events
 * @param {(summary: any) => void} onSummary
 * @param {() => void} [onGone] the stream cannot be opened (the batch is gone, or access denied)
 * @returns {() => void} close
 */
export function watch(url, onSummary, onGone) {
  const source = new EventSource(url);
  source.addEventListener('summary', (event) => {
    const summary = JSON.parse(/** @type {MessageEvent} */ (event).data);
    if (isFinal(summary.status)) source.close();
    onSummary(summary);
  });
  // While the connection drops and comes back the browser reconnects by itself (readyState
  // CONNECTING); CLOSED means it gave up, e.g. on a 404 or 401.
  source.addEventListener('error', () => {
    if (source.readyState === EventSource.CLOSED) onGone?.();
  });
  return () => source.close();
}
