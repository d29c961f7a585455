/** The dashboard's bounded memory of each host's load samples and budget changes. */
import { strict as assert } from 'node:assert';
import { type BudgetMark, LoadRing, type LoadRingEntry } from '../../../../coordinator/dashboard/load-ring';

const load = (at: number) => ({ cpuPercent: at % 100, ioBytesPerSec: at * 10, at });
const mark = (host: string, atUnixMs: number): BudgetMark => ({
  host,
  vm: 'vm1',
  job: 'nightly',
  tokenId: `t${atUnixMs}`,
  atUnixMs,
  level: 'throttled',
  reason: 'CPU over 80 %',
});

describe('load ring', () => {
  it("keeps each host's newest samples and marks up to its capacity, oldest first", () => {
    const ring = new LoadRing(3, 2);
    for (let at = 1; at <= 5; at++) ring.addSample('h1', load(at));
    ring.addSample('h2', load(9));
    for (const at of [1, 2, 3]) ring.addMark(mark('h1', at));
    const h1 = ring.of('h1');
    assert.deepEqual(
      h1.samples.map((s) => s.atUnixMs),
      [3, 4, 5],
    );
    assert.deepEqual(h1.samples[0], { host: 'h1', atUnixMs: 3, cpuPercent: 3, ioBytesPerSec: 30 });
    assert.deepEqual(
      h1.marks.map((m) => m.atUnixMs),
      [2, 3],
    );
    assert.deepEqual(
      ring.of('h2').samples.map((s) => s.atUnixMs),
      [9],
    );
    assert.deepEqual(ring.of('nowhere'), { samples: [], marks: [] });
  });

  it('tells subscribers each entry as it is added, until they unsubscribe', () => {
    const ring = new LoadRing();
    const seen: LoadRingEntry[] = [];
    const unsubscribe = ring.subscribe((e) => seen.push(e));
    ring.addSample('h1', load(1));
    ring.addMark(mark('h1', 2));
    unsubscribe();
    ring.addSample('h1', load(3));
    assert.deepEqual(seen, [
      { sample: { host: 'h1', atUnixMs: 1, cpuPercent: 1, ioBytesPerSec: 10 } },
      { mark: mark('h1', 2) },
    ]);
  });
});
