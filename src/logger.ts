/**
 * The engine's default logger: pino at `info`, named `partita`, JSON lines on **stderr** (a library's
 * logs do not belong on the program's stdout, which may be its output: `node app.mjs | jq`).
 *
 * It never keeps a process alive. pino's own default destination (an asynchronous sonic-boom on
 * stdout) registers an exit hook that flushes synchronously, and sonic-boom's `flushSync` retries
 * every failed write forever, EPIPE included: `node app.mjs | head -3` then hung at exit once `head`
 * was gone. This destination instead:
 *
 * - writes synchronously (`fs.writeSync`, as `console.error` does), so nothing is left pending;
 * - turns itself off on EPIPE (the reader is gone) or any other write error: later lines are dropped;
 * - on EAGAIN (a full non-blocking pipe: the reader is slow; loading pino makes stdout and stderr
 *   non-blocking) keeps the rest, up to 1 MiB, and retries on an unreferenced timer, which never
 *   keeps the event loop alive; lines beyond 1 MiB are dropped and counted, and a warning says how
 *   many once the pipe drains;
 * - at exit writes what it still keeps, waiting for a slow reader at most 1 s in all, then gives up.
 */
import { writeSync } from 'node:fs';
import { type DestinationStream, type Logger, pino } from 'pino';

/** Bytes kept while the pipe is full; the lines beyond are dropped. */
const MAX_KEPT_BYTES = 1 << 20;
/** Delay between attempts to write what is kept. */
const RETRY_MS = 10;
/** Longest time the exit hook waits for a slow reader to take what is kept. */
const EXIT_WAIT_MS = 1_000;

/** The logger the engine uses when its `logger` option is not given. */
export function defaultLogger(): Logger {
  return pino({ name: 'partita' }, new FdDestination(2));
}

/** Destinations keeping lines the pipe did not take yet: written at exit, if the reader takes them. */
const keeping = new Set<FdDestination>();
let exitHook = false;

function writeKeptAtExit(): void {
  const deadline = Date.now() + EXIT_WAIT_MS;
  for (const dest of keeping) dest.drain(deadline);
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** A pino destination writing to a file descriptor synchronously, never holding up exit (see above). */
export class FdDestination implements DestinationStream {
  readonly #fd: number;
  #kept: Buffer[] = [];
  #keptBytes = 0;
  #dropped = 0;
  #off = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(fd: number) {
    this.#fd = fd;
  }

  /** False once a write failed for good (EPIPE, EBADF…): everything is dropped from then on. */
  get writable(): boolean {
    return !this.#off;
  }

  write(line: string): void {
    if (this.#off) return;
    const buf = Buffer.from(line, 'utf8');
    if (this.#kept.length > 0) {
      this.#keep(buf);
      return;
    }
    const written = this.#writeSome(buf);
    if (written < buf.length) {
      this.#keep(buf.subarray(written));
      this.#retryLater();
    }
  }

  /** pino's `logger.flush(cb)`: writes what is kept if the reader takes it now; never waits. */
  flush(cb?: (err?: Error) => void): void {
    this.drain();
    cb?.();
  }

  /**
   * Writes what is kept. On a full pipe, returns at once, or with a `deadline` (a `Date.now()`
   * value) waits for the reader until then: only the exit hook gives one.
   */
  drain(deadline?: number): void {
    while (!this.#off && this.#kept.length > 0) {
      const head = this.#kept[0]!;
      const written = this.#writeSome(head);
      this.#keptBytes -= written;
      if (written === head.length) {
        this.#kept.shift();
      } else if (!this.#off) {
        this.#kept[0] = head.subarray(written);
        if (deadline === undefined || Date.now() >= deadline) return;
        Atomics.wait(sleeper, 0, 0, 2);
      }
    }
    keeping.delete(this);
    if (this.#dropped > 0 && !this.#off) {
      const dropped = this.#dropped;
      this.#dropped = 0;
      const msg = 'log lines dropped: the reader of this stream was too slow';
      this.write(`${JSON.stringify({ level: 40, time: Date.now(), name: 'partita', dropped, msg })}\n`);
    }
  }

  /** Writes what the descriptor takes now and returns how many bytes that was; turns off on a failure. */
  #writeSome(buf: Buffer): number {
    let offset = 0;
    while (offset < buf.length) {
      try {
        offset += writeSync(this.#fd, buf, offset);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') this.#turnOff();
        break;
      }
    }
    return offset;
  }

  #keep(buf: Buffer): void {
    if (this.#keptBytes + buf.length > MAX_KEPT_BYTES) {
      this.#dropped++;
      return;
    }
    this.#kept.push(buf);
    this.#keptBytes += buf.length;
    keeping.add(this);
    if (!exitHook) {
      exitHook = true;
      process.once('exit', writeKeptAtExit);
    }
  }

  #retryLater(): void {
    if (this.#timer || this.#off) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.drain();
      if (this.#kept.length > 0 || this.#dropped > 0) this.#retryLater();
    }, RETRY_MS);
    this.#timer.unref();
  }

  #turnOff(): void {
    this.#off = true;
    this.#kept = [];
    this.#keptBytes = 0;
    this.#dropped = 0;
    keeping.delete(this);
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
