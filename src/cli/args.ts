import { type ParseArgsConfig, parseArgs } from 'node:util';

/**
 * Command-line parsing (node:util parseArgs). Every option is declared once here; each command
 * lists the ones it takes, and anything else is a usage error (exit code 2).
 */

/** A usage mistake: an unknown command or option, a missing argument. Exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

type OptionSpec = NonNullable<ParseArgsConfig['options']>[string];

export const OPTIONS = {
  db: { type: 'string' },
  pg: { type: 'string' },
  schema: { type: 'string' },
  url: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
  status: { type: 'string', multiple: true },
  job: { type: 'string' },
  limit: { type: 'string' },
  interval: { type: 'string' },
  machine: { type: 'string' },
  reason: { type: 'string' },
  input: { type: 'string' },
  id: { type: 'string' },
  priority: { type: 'string' },
  after: { type: 'string', multiple: true },
  when: { type: 'string' },
  meta: { type: 'string', multiple: true },
  before: { type: 'string' },
  'older-than': { type: 'string' },
} as const satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof OPTIONS;

/** Options every command takes. */
export const GLOBAL_OPTIONS: readonly OptionName[] = ['db', 'pg', 'schema', 'url', 'json', 'help'];

export interface Values {
  db?: string;
  pg?: string;
  schema?: string;
  url?: string;
  json?: boolean;
  help?: boolean;
  version?: boolean;
  status?: string[];
  job?: string;
  limit?: string;
  interval?: string;
  machine?: string;
  reason?: string;
  input?: string;
  id?: string;
  priority?: string;
  after?: string[];
  when?: string;
  meta?: string[];
  before?: string;
  'older-than'?: string;
}

export interface Parsed {
  command: string | undefined;
  positionals: string[];
  values: Values;
  /** The options given, as typed (`--status`), to name them in errors. */
  given: OptionName[];
}

export function parse(argv: readonly string[]): Parsed {
  const result = (() => {
    try {
      return parseArgs({
        args: [...argv],
        options: OPTIONS,
        allowPositionals: true,
        strict: true,
        tokens: true,
      });
    } catch (err) {
      // parseArgs' messages name the option and say what is wrong.
      throw new UsageError((err as Error).message);
    }
  })();
  const given = [
    ...new Set(result.tokens.filter((t) => t.kind === 'option').map((t) => t.name as OptionName)),
  ];
  const [command, ...positionals] = result.positionals;
  return { command, positionals, values: result.values as Values, given };
}

/** A whole number option within bounds, or `fallback` when absent. */
export function intOption(
  value: string | undefined,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, not "${value}"`);
  return n;
}
