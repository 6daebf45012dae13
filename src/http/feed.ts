import { EngineStateError, NotFoundError } from '../errors.js';
import { type BatchStatus, type BatchSummary, isFinalStatus } from '../summary.js';
import { eventId, isAhead } from './event-ids.js';
import type { HandledEngine } from './types.js';

/**
 * The summaries of one batch for every event stream open on it: one engine subscription per batch,
 * however many clients watch it. A change costs the same with one client or two hundred; only an
 * event actually sent is written once per client, and serialized once for all of them.
 *
 * Progress-only changes are coalesced to one event per `eventIntervalMs` (longer when hundreds of
 * clients watch one batch, see progressInterval); status changes go out at once, in order. A client that reads slowly gets the latest progress when it catches up, never a
 * backlog. Every `heartbeatMs` each stream gets a `: ping` comment (proxies close idle
 * connections) and the batch is read once: a backstop for a batch this engine does not run, whose
 * changes it is not told about, and for a lost lease, so the streams still move on and end.
 */

/** Progress-only events a second, summed over a batch's streams, beyond which each stream gets fewer. */
const PROGRESS_WRITES_PER_SECOND = 400;

const encoder = new TextEncoder();
const PING = encoder.encode(': ping\n\n');

/** One serialization per summary object, shared by every stream. */
const frames = new WeakMap<BatchSummary, Uint8Array>();

function frame(summary: BatchSummary): Uint8Array {
  let bytes = frames.get(summary);
  if (!bytes) {
    bytes = encoder.encode(`event: summary\nid: ${eventId(summary)}\ndata: ${JSON.stringify(summary)}\n\n`);
    frames.set(summary, bytes);
  }
  return bytes;
}

export interface FeedSettings {
  heartbeatMs: number;
  eventIntervalMs: number;
  retryAfterSeconds: number;
}

/** The feeds of one handler, by batch id. */
export class Feeds {
  private readonly feeds = new Map<string, Feed>();

  constructor(
    private readonly engine: HandledEngine,
    private readonly settings: FeedSettings,
  ) {}

  /** A new event stream on batch `id`; `lastEventId` from a reconnecting client. */
  open(id: string, lastEventId: string | undefined): ReadableStream<Uint8Array> {
    let feed = this.feeds.get(id);
    if (!feed) {
      feed = new Feed(this.engine, id, this.settings, () => this.feeds.delete(id));
      this.feeds.set(id, feed);
    }
    return feed.join(lastEventId);
  }
}

class Feed {
  private readonly streams = new Set<Stream>();
  private unsubscribe: (() => void) | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The latest summary heard (sent or held back). */
  private latest: BatchSummary | undefined;
  private sentStatus: BatchStatus | undefined;
  private lastSentAt = 0;
  private ended = false;

  constructor(
    private readonly engine: HandledEngine,
    private readonly id: string,
    private readonly settings: FeedSettings,
    private readonly gone: () => void,
  ) {}

  join(lastEventId: string | undefined): ReadableStream<Uint8Array> {
    let stream: Stream;
    return new ReadableStream<Uint8Array>({
      start: (controller) => {
        stream = new Stream(controller, lastEventId);
        // How long an EventSource waits before reconnecting after the stream breaks.
        controller.enqueue(encoder.encode(`retry: ${this.settings.retryAfterSeconds * 1000}\n\n`));
        this.streams.add(stream);
        if (this.latest) stream.deliver(this.latest, true);
        else if (!this.unsubscribe) this.start();
        if (stream.closed) this.leave(stream);
      },
      pull: () => stream.flush(),
      cancel: () => {
        stream.closed = true;
        this.leave(stream);
      },
    });
  }

  private start(): void {
    const unsubscribe = this.engine.subscribe(this.id, (s) => this.hear(s, false));
    // The listener may have run, and the feed ended, before subscribe returned.
    if (this.ended) unsubscribe();
    else this.unsubscribe = unsubscribe;
    if (this.ended) return;
    this.heartbeat = setInterval(() => this.tick(), this.settings.heartbeatMs);
    this.heartbeat.unref();
  }

  private hear(summary: BatchSummary, fromBackstop: boolean): void {
    if (this.ended) return;
    // A read may resolve after a newer change was delivered: the backstop never goes backwards.
    if (fromBackstop && !isAhead(summary, this.latest)) return;
    this.latest = summary;
    if (summary.status !== this.sentStatus || isFinalStatus(summary.status)) this.send();
    else if (!this.timer) {
      const wait = this.lastSentAt + this.progressInterval() - Date.now();
      if (wait <= 0) this.send();
      else this.timer = setTimeout(() => this.send(), wait);
    }
  }

  /**
   * The least time between two progress events: `eventIntervalMs`, stretched once many clients
   * watch so that a batch's streams together take at most {@link PROGRESS_WRITES_PER_SECOND}
   * progress writes a second (each is a socket write per client; with 200 clients, two a second
   * each). 0 is taken as asked: every change.
   */
  private progressInterval(): number {
    const asked = this.settings.eventIntervalMs;
    if (asked === 0) return 0;
    return Math.max(asked, (this.streams.size * 1000) / PROGRESS_WRITES_PER_SECOND);
  }

  /** Send the latest summary to every stream. */
  private send(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const summary = this.latest;
    if (!summary || this.ended) return;
    const statusChange = summary.status !== this.sentStatus;
    this.sentStatus = summary.status;
    this.lastSentAt = Date.now();
    for (const stream of this.streams) {
      stream.deliver(summary, statusChange);
      if (stream.closed) this.streams.delete(stream);
    }
    if (isFinalStatus(summary.status)) this.end();
  }

  private tick(): void {
    for (const stream of this.streams) stream.ping();
    this.engine.get(this.id).then(
      (summary) => this.hear(summary, true),
      (err: unknown) => {
        // The engine stopped: the streams end (a client reconnects after `retry:` and is told 503
        // until an engine runs again), so a server's close() is not held open by them for good.
        if (err instanceof NotFoundError || err instanceof EngineStateError) this.end();
        // Anything else (a store error): the next tick tries again.
      },
    );
  }

  private leave(stream: Stream): void {
    this.streams.delete(stream);
    if (this.streams.size === 0) this.end();
  }

  /** No stream left, or the batch is final: stop listening, end every stream. Idempotent. */
  private end(): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.heartbeat);
    if (this.timer) clearTimeout(this.timer);
    this.unsubscribe?.();
    for (const stream of this.streams) stream.close();
    this.streams.clear();
    this.gone();
  }
}

/** One client's stream: what it has been sent, and the progress held back while it reads slowly. */
class Stream {
  closed = false;
  private started = false;
  private held: BatchSummary | undefined;

  constructor(
    private readonly controller: ReadableStreamDefaultController<Uint8Array>,
    private readonly skipId: string | undefined,
  ) {}

  deliver(summary: BatchSummary, statusChange: boolean): void {
    if (this.closed) return;
    const first = !this.started;
    this.started = true;
    // A reconnecting client that has seen this very summary: skip it.
    if (first && this.skipId !== undefined && eventId(summary) === this.skipId) {
      if (isFinalStatus(summary.status)) this.close();
      return;
    }
    if (!first && !statusChange && (this.controller.desiredSize ?? 0) <= 0) {
      this.held = summary; // pull() sends it when the client has read
      return;
    }
    this.held = undefined;
    this.controller.enqueue(frame(summary));
    if (isFinalStatus(summary.status)) this.close();
  }

  flush(): void {
    const held = this.held;
    if (!held || this.closed) return;
    this.held = undefined;
    this.controller.enqueue(frame(held));
  }

  ping(): void {
    if (!this.closed && (this.controller.desiredSize ?? 0) > 0) this.controller.enqueue(PING);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.controller.close();
    } catch {
      // Already cancelled by the client.
    }
  }
}
