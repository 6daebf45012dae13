import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Each file spins up worker threads; two files at once keep a 2-core machine responsive.
    maxWorkers: 2,
    reporters: ['default', './test/summary-reporter.ts'],
  },
});
