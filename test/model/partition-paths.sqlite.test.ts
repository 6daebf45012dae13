import { describe, it } from 'vitest';
import { drivePartitionPath } from './drive-partition.js';
import { partitionModel } from './model.js';
import { generatePaths } from './paths.js';

describe('partition (lane) paths on the engine with sqliteStore (a temp file)', () => {
  for (const path of generatePaths(partitionModel)) {
    it(path.description, () => drivePartitionPath(path, 'sqlite'));
  }
});
