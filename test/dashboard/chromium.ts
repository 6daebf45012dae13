import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';
import { it } from 'vitest';

/** Debian's chromium package; .ci/run installs it (docs/operating.md, "Dashboard"). */
export const CHROMIUM = process.env.PARTITA_TEST_CHROMIUM ?? '/usr/bin/chromium';

/**
 * Why the browser tests cannot run here, or undefined. Under CI=true a missing browser is a failing
 * test, not a skip: the dashboard must be checked in a real browser before it ships.
 */
export function chromiumMissing(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  const reason = `${CHROMIUM} is missing (apt-get install -y chromium, or set PARTITA_TEST_CHROMIUM)`;
  if (process.env.CI === 'true')
    it('finds Chromium to run the dashboard in (required when CI=true)', () => {
      throw new Error(reason);
    });
  else console.warn(`Skipping the dashboard browser test: ${reason}`);
  return reason;
}

/** Headless Chromium, quiet: no sandbox (containers), no GPU, no calls home. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
