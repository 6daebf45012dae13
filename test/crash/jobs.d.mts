import type { defineJob as DefineJob, JobDefinition } from '../../src/index.js';

export declare const TOTAL: number;
export declare const EXPECTED: { total: number; failed: number };
export declare function failing(i: number): boolean;
export declare function crashJob(
  defineJob: typeof DefineJob,
  options?: { finalize?: () => Promise<unknown> },
): JobDefinition<{ n: number }>;
