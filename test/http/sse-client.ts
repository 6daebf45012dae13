/** A minimal Server-Sent Events reader over fetch, for tests: events in order, comments included. */

export interface SseEvent {
  event?: string;
  id?: string;
  data?: string;
  retry?: string;
  comment?: string;
}

export class SseClient {
  private buffer = '';
  private readonly decoder = new TextDecoder();
  private reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  private readonly abort = new AbortController();
  response!: Response;

  static async open(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const client = new SseClient();
    client.response = await fetch(url, {
      headers: { accept: 'text/event-stream', ...headers },
      signal: client.abort.signal,
    });
    client.reader = client.response.body?.getReader();
    return client;
  }

  /** The next event or comment block; undefined when the stream has ended. */
  async next(): Promise<SseEvent | undefined> {
    for (;;) {
      const end = this.buffer.indexOf('\n\n');
      if (end >= 0) {
        const block = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        return parse(block);
      }
      if (!this.reader) return undefined;
      const { done, value } = await this.reader.read();
      if (done) return undefined;
      this.buffer += this.decoder.decode(value, { stream: true });
    }
  }

  /** The next `summary` event, skipping comments and `retry`; undefined at the end of the stream. */
  async nextSummary(): Promise<
    | (SseEvent & {
        summary: { status: string; succeeded: number; failed: number } & Record<string, unknown>;
      })
    | undefined
  > {
    for (;;) {
      const e = await this.next();
      if (!e) return undefined;
      if (e.event === 'summary') return { ...e, summary: JSON.parse(e.data ?? 'null') };
    }
  }

  close(): void {
    this.abort.abort();
  }
}

function parse(block: string): SseEvent {
  const e: SseEvent = {};
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) {
      e.comment = line.slice(1).trim();
      continue;
    }
    const i = line.indexOf(':');
    const field = i < 0 ? line : line.slice(0, i);
    const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
    if (field === 'event' || field === 'id' || field === 'data' || field === 'retry')
      e[field] = field === 'data' && e.data !== undefined ? `${e.data}\n${value}` : value;
  }
  return e;
}
