import { describe, it } from 'vitest';
import { driveBatchPath } from './drive-batch.js';
import { batchModel } from './model.js';
import { generatePaths } from './paths.js';

describe('batch paths on the engine with sqliteStore (a temp file)', () => {
  for (const path of generatePaths(batchModel)) {
    it(path.description, () => driveBatchPath(path, 'sqlite'));
  }
});
