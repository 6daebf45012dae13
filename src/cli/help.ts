import { COMMANDS, DEFAULT_DB } from './commands.js';

const OPTIONS = `where the batches are (one of):
  --db PATH      an SQLite store (default ${DEFAULT_DB})
  --pg URL       a PostgreSQL store, with --schema S (default partita)
  --url URL      a running service's partita/http API, e.g. http://localhost:8080/partita
                 (PARTITA_TOKEN, if set, is sent as a bearer token)

  --json         machine-readable output (JSON; NDJSON for watch)
  -h, --help     this help, or a command's (partita <command> --help)
  -v, --version  partita's version`;

/** `partita --help`, and `partita <command> --help`. */
export function helpText(command?: string): string {
  const c = command ? COMMANDS[command] : undefined;
  if (c) return `usage: partita ${c.usage} [--json]\n\n${c.summary}\n\n${OPTIONS}\n`;
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS).map(([name, x]) => `  ${name.padEnd(width)}  ${x.summary}`);
  return `usage: partita <command> [arguments] [options]

Reads batches straight from a store (no engine needs to run, and no batch is changed; a store
written by an older partita is upgraded first, as an engine would, and older builds then refuse it),
or acts through a running service's HTTP API.

commands:
${lines.join('\n')}

${OPTIONS}

exit codes: 0 ok, 1 error (not found, store unreachable, recount mismatch), 2 usage
`;
}
