import { strict as assert } from 'node:assert';
import { renderGantt } from '../../../ctl/gantt';
import type { Plan__Output, PlannedSlot__Output, UnplacedRun__Output } from '../../../proto/generated/headroom/v1';

// Local times: the axis ticks the local hours, as the wall clock reads them.
const at = (h: number, m = 0, day = 15) => new Date(2026, 0, day, h, m, 0).getTime();
const NOW = at(12);
const DAY = 24 * 3_600_000;
const LABEL = 'vm-1/nightly'; // 12 characters
// 96 chart columns over 24 h: 15 minutes a column.
const WIDTH = LABEL.length + 1 + 96;

function slot(over: Partial<PlannedSlot__Output> = {}): PlannedSlot__Output {
  return {
    vm: 'vm-1',
    job: 'nightly',
    kind: 'TOKEN_KIND_GUEST',
    startUnixMs: at(14),
    endUnixMs: at(15),
    earliestStartUnixMs: at(13, 30),
    windowEndUnixMs: at(16),
    host: 'host-a',
    target: '',
    targetIoBytesPerSec: 0,
    ...over,
  };
}

function unplaced(over: Partial<UnplacedRun__Output> = {}): UnplacedRun__Output {
  return {
    vm: 'vm-2',
    job: 'dump',
    kind: 'TOKEN_KIND_GUEST',
    reason: 'its window is shorter than its expected duration',
    earliestStartUnixMs: at(18),
    windowEndUnixMs: at(19),
    host: 'host-a',
    ...over,
  };
}

function plan(slots: PlannedSlot__Output[], missing: UnplacedRun__Output[] = []): Plan__Output {
  return {
    host: 'host-a',
    generatedUnixMs: NOW,
    horizonEndUnixMs: NOW + DAY,
    slots,
    unplaced: missing,
    phases: [],
    target: null,
    budget: { ioBytesPerSec: 0, cpuPercent: 0 },
  };
}

/** The chart part of a row (after the label and its space). */
const chart = (line: string) => line.slice(LABEL.length + 1);

describe('renderGantt', () => {
  it("draws a guest slot with '=' over its window's '.', at the columns of its times", () => {
    const lines = renderGantt(plan([slot()]), NOW, WIDTH).split('\n');
    assert.equal(lines.length, 3);
    // 13:30 is column 6, 14:00 column 8, 15:00 column 12, 16:00 column 16 (exclusive).
    assert.equal(lines[2], `${LABEL} ${' '.repeat(6)}..====....`);
  });

  it("draws a hypervisor slot with '#'", () => {
    const lines = renderGantt(plan([slot({ kind: 'TOKEN_KIND_HYPERVISOR' })]), NOW, WIDTH).split('\n');
    assert.equal(chart(lines[2]).trim(), '..####....');
  });

  it('ticks every local hour within the horizon on the axis, labelled with the hour', () => {
    const [axis, scale] = renderGantt(plan([slot()]), NOW, WIDTH).split('\n');
    // 13:00 to 11:00 the next day: 12:00 is the horizon's end, past the last column.
    assert.equal([...scale].filter((c) => c === '|').length, 23);
    // 13:00 is 4 columns (an hour) after now.
    assert.equal(chart(scale).indexOf('|'), 4);
    assert.equal(chart(axis).slice(4, 6), '13');
    assert.equal(chart(axis).slice(8, 10), '14');
    assert.equal(chart(axis).slice(48, 50), '00');
  });

  it('spaces the ticks out when the chart is too narrow for every hour', () => {
    const [axis, scale] = renderGantt(plan([slot()]), NOW, LABEL.length + 1 + 30).split('\n');
    // 48 minutes a column: every third hour, at 15, 18, 21, 00, 03, 06 and 09.
    assert.equal([...scale].filter((c) => c === '|').length, 7);
    assert.deepEqual(chart(axis).trim().split(/\s+/), ['15', '18', '21', '00', '03', '06', '09']);
  });

  it('shows a run that could not be placed as its window alone, rows sorted by VM and job', () => {
    const lines = renderGantt(plan([slot()], [unplaced()]), NOW, WIDTH).split('\n');
    assert.deepEqual(
      lines.slice(2).map((l) => l.slice(0, LABEL.length).trim()),
      ['vm-1/nightly', 'vm-2/dump'],
    );
    assert.equal(chart(lines[3]).trim(), '....');
    assert.ok(!lines[3].includes('='));
  });

  it('gives a row to a run whose schedule could not be read, with nothing drawn', () => {
    const lines = renderGantt(plan([], [unplaced({ earliestStartUnixMs: 0, windowEndUnixMs: 0 })]), NOW, WIDTH).split(
      '\n',
    );
    assert.equal(lines[2], 'vm-2/dump');
  });

  it('draws a run shorter than a column as one character', () => {
    const lines = renderGantt(plan([slot({ endUnixMs: at(14, 1) })]), NOW, WIDTH).split('\n');
    assert.equal([...lines[2]].filter((c) => c === '=').length, 1);
  });

  it('keeps every line within the width, cutting long labels', () => {
    const long = slot({ vm: 'a-very-long-virtual-machine-name-indeed', job: 'and-its-job' });
    const text = renderGantt(plan([slot(), long]), NOW, 80);
    for (const line of text.split('\n')) assert.ok(line.length <= 80, `${line.length}: ${line}`);
    assert.match(text, /^a-very-long-virtual-machine-nam… /m);
  });
});
