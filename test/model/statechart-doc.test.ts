import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';

// The generator walks the compiled machines (dist/), as `npm run graph` does; `npm test` builds first.
const { statechartDoc } = (await import('../../scripts/graph.mjs' as string)) as {
  statechartDoc: () => string;
};

it('docs/statechart.md is what `npm run graph` generates from the machines (run it after changing them)', () => {
  const committed = readFileSync(new URL('../../docs/statechart.md', import.meta.url), 'utf8');
  expect(committed).toBe(statechartDoc());
});
