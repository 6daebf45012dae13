import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { items, scriptedJob, startEngine } from './helpers.js';

describe('logging', () => {
  it('logs batch transitions at info and partitions at debug, through child loggers, without payloads', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    });
    const logger = pino({ level: 'debug' }, sink);
    const engine = await startEngine({ jobs: [scriptedJob()], logger });
    const batch = await engine.submit('scripted', {
      items: [...items('ok', 2), { key: 'secret-key', mode: 'fail', token: 'jwt-xyz' } as never],
    });
    await engine.wait(batch.id);
    const states = lines.filter((l) => l.msg === 'batch state' && l.batchId === batch.id).map((l) => l.state);
    expect(states).toEqual(['queued', 'processing', 'finalizing', 'partial']);
    const partitions = lines.filter((l) => l.msg === 'partition settled');
    expect(partitions).toHaveLength(3);
    expect(partitions[0]).toMatchObject({ level: 20, batchId: batch.id, job: 'scripted', attempt: 1 });
    expect(JSON.stringify(lines)).not.toContain('jwt-xyz');
  });
});
