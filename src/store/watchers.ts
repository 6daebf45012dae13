import type { StatusEvent } from './store.js';

/**
 * The listeners of a store's `watch()`. Notification is best effort and must never fail the write
 * that caused it, so a listener that throws is ignored and the others still hear the event.
 */
export class Watchers<E extends object = StatusEvent> {
  private readonly listeners = new Set<{ listener: (event: E) => void }>();

  /** @param onCountChange told the number of subscriptions after each change (postgres listens only while there are some). */
  constructor(private readonly onCountChange?: (count: number) => void) {}

  get count(): number {
    return this.listeners.size;
  }

  /** Subscribes; the returned function unsubscribes and may be called more than once. */
  add(listener: (event: E) => void): () => void {
    // A wrapper per call: the same function subscribed twice is two subscriptions.
    const entry = { listener };
    this.listeners.add(entry);
    this.onCountChange?.(this.listeners.size);
    return () => {
      if (this.listeners.delete(entry)) this.onCountChange?.(this.listeners.size);
    };
  }

  emit(event: E): void {
    for (const { listener } of [...this.listeners]) {
      try {
        listener({ ...event });
      } catch {
        // best effort: see the class comment
      }
    }
  }
}
