#!/usr/bin/env node
/**
 * The `partita` command (package.json `bin`): batches read straight from a store, or acted on
 * through a running service. `partita --help` lists the commands; docs/operating.md shows them.
 */
import { once } from 'node:events';
import { main } from './run.js';

// `partita partitions <id> | head`: the reader went away, nothing more to say.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

/** Writes that wait for a full pipe to drain, so that output of any size is never all in memory. */
function writer(stream: NodeJS.WriteStream) {
  return {
    write: (text: string): void | Promise<void> => {
      if (!stream.write(text)) return once(stream, 'drain').then(() => {});
    },
  };
}

main(process.argv.slice(2), writer(process.stdout), writer(process.stderr)).then(
  (code) => {
    // Not process.exit(): output may still be draining into a pipe.
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`partita: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
