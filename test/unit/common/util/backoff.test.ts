import { strict as assert } from 'node:assert';
import { Backoff } from '../../../../common/util/backoff';

describe('Backoff', () => {
  it('backs off exponentially from 1 s to 30 s, with jitter around each step', () => {
    const mid = new Backoff({ random: () => 0.5 });
    assert.deepEqual(
      Array.from({ length: 8 }, () => mid.next()),
      [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000],
    );
    mid.reset();
    assert.equal(mid.next(), 1_000);
    const low = new Backoff({ random: () => 0 });
    assert.deepEqual([low.next(), low.next()], [800, 1_600]);
    const high = new Backoff({ random: () => 0.999999 });
    assert.deepEqual(
      [high.next(), high.next(), high.next(), high.next(), high.next(), high.next()],
      [1_200, 2_400, 4_800, 9_600, 19_200, 30_000],
    );
  });
});
