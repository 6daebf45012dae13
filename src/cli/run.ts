/**
 * The CLI as a function of its arguments: parsing, dispatch, errors and exit codes. main.ts runs it.
 */
import { readFileSync } from 'node:fs';
import { PartitaError } from '../errors.js';
import { GLOBAL_OPTIONS, type OptionName, parse, UsageError } from './args.js';
import { COMMANDS, type CommandContext, SERVICE_COMMANDS, sourceFor } from './commands.js';
import { helpText } from './help.js';
import { httpSource, ServiceError } from './http-source.js';
import { type Out, visible } from './output.js';
import type { Source } from './source.js';

const EXIT_OK = 0;
const EXIT_ERROR = 1;
const EXIT_USAGE = 2;

/** Runs the CLI with these arguments; resolves with the exit code. */
export async function main(argv: readonly string[], out: Out, err: Out): Promise<number> {
  const json = argv.includes('--json');
  let source: Source | undefined;
  try {
    const parsed = parse(argv);
    const { command, values } = parsed;
    if (values.version) {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
        version: string;
      };
      await out.write(`${pkg.version}\n`);
      return EXIT_OK;
    }
    if (command === undefined || (command === 'help' && parsed.positionals.length === 0)) {
      await (values.help || command === 'help' ? out : err).write(helpText());
      return values.help || command === 'help' ? EXIT_OK : EXIT_USAGE;
    }
    const name = command === 'help' ? parsed.positionals[0]! : command;
    const cmd = COMMANDS[name];
    if (!cmd) throw new UsageError(`unknown command "${name}" (partita --help lists them)`);
    if (values.help || command === 'help') {
      await out.write(helpText(name));
      return EXIT_OK;
    }
    const allowed = new Set<OptionName>([...GLOBAL_OPTIONS, ...cmd.options]);
    for (const option of parsed.given)
      if (!allowed.has(option)) throw new UsageError(`${name} does not take --${option}`);
    if (SERVICE_COMMANDS.has(name) && values.url === undefined)
      throw new UsageError(
        `${name} acts through a running service: give --url URL (the CLI never writes to a store)`,
      );
    const open = sourceFor(parsed);
    const ctx: CommandContext = {
      args: parsed.positionals,
      values,
      out,
      source: async () => {
        source ??= await open();
        return source;
      },
      service: () => httpSource(values.url!),
      tty: process.stdout.isTTY === true,
      columns: () => process.stdout.columns || 80,
    };
    return await cmd.run(ctx);
  } catch (e) {
    if (e instanceof UsageError) {
      await report(err, json, 'USAGE', e.message, true);
      return EXIT_USAGE;
    }
    const code = e instanceof PartitaError || e instanceof ServiceError ? e.code : 'INTERNAL';
    await report(err, json, code, (e as Error)?.message ?? String(e), false);
    return EXIT_ERROR;
  } finally {
    await source?.close().catch(() => {});
  }
}

async function report(err: Out, json: boolean, code: string, message: string, usage: boolean): Promise<void> {
  if (json) await err.write(`${JSON.stringify({ error: { code, message } })}\n`);
  else
    await err.write(
      `partita: ${message.split('\n').map(visible).join('\n')}${usage ? '\n(partita --help shows the usage)' : ''}\n`,
    );
}
