import { strict as assert } from 'node:assert';
import { parseByteRate } from '../../../../common/util/byte-rate';

const MiB = 1024 * 1024;

describe('parseByteRate', () => {
  it('reads byte rates as people write them', () => {
    assert.deepEqual(['0', '1048576', '500K', '10MiB', '1.5G', '10 MiB/s', '2m'].map(parseByteRate), [
      0,
      MiB,
      500 * 1024,
      10 * MiB,
      1.5 * 1024 * MiB,
      10 * MiB,
      2 * MiB,
    ]);
    for (const bad of ['', 'fast', '10MB', '-1K', '1e3'])
      assert.throws(() => parseByteRate(bad), /expected bytes per second/);
  });
});
