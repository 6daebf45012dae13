import type { BatchingOption, defineJob as DefineJob, JobDefinition } from '../../src/index.js';

export declare const TOTAL: number;
export declare const EXPECTED: { total: number; failed: number };
export declare function failing(i: number): boolean;
export declare function batchingOf(env: string | undefined): BatchingOption;
export declare function crashJob(
  defineJob: typeof DefineJob,
  options?: { finalize?: () => Promise<unknown>; batching?: BatchingOption },
): JobDefinition<{ n: number }>;
