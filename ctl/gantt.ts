/**
 * A plan as a text Gantt chart: one row per VM and job, the horizon across, local hours ticked on an axis
 * above. A run's window is drawn faintly (`.`) and its planned slot over it, `=` for a guest backup and
 * `#` for a hypervisor one, so that how much slack each run has can be read at a glance. Pure: the plan,
 * `now` and the width in, text out.
 */
import type { Plan__Output } from '../proto/generated/headroom/v1';

export const DEFAULT_WIDTH = 100;
/** Below this the chart cannot show a day's hours: it is drawn this wide and the terminal wraps it. */
const MIN_CHART_COLUMNS = 24;
const MAX_LABEL = 32;

const GUEST = '=';
const HYPERVISOR = '#';
const WINDOW = '.';
const EMPTY = ' ';

export const LEGEND = `${GUEST} guest backup   ${HYPERVISOR} hypervisor backup   ${WINDOW} its window   | hour`;

/** Hours between ticks: the smallest of these that leaves room for a two-digit label and a space. */
const TICK_HOURS = [1, 2, 3, 4, 6, 12, 24];

/**
 * The chart from `now` to the plan's horizon end, `width` columns wide in all (labels included). Rows
 * are sorted by VM, then job; runs the planner could not place show their window only.
 */
export function renderGantt(plan: Plan__Output, now: number, width = DEFAULT_WIDTH): string {
  const rows = new Map<string, { windows: [number, number][]; slots: [number, number, string][] }>();
  // A shared target's timeline holds runs of several hosts: each row says whose.
  const byHost = plan.target !== null;
  const row = (vm: string, job: string, host: string) => {
    const label = byHost ? `${host}:${vm}/${job}` : `${vm}/${job}`;
    let r = rows.get(label);
    if (!r) rows.set(label, (r = { windows: [], slots: [] }));
    return r;
  };
  for (const s of plan.slots) {
    const r = row(s.vm, s.job, s.host);
    r.windows.push([s.earliestStartUnixMs, s.windowEndUnixMs]);
    r.slots.push([s.startUnixMs, s.endUnixMs, s.kind === 'TOKEN_KIND_HYPERVISOR' ? HYPERVISOR : GUEST]);
  }
  for (const u of plan.unplaced) {
    // A run whose schedule could not be read has no window to draw, but still gets its row.
    const r = row(u.vm, u.job, u.host);
    if (u.windowEndUnixMs > 0) r.windows.push([u.earliestStartUnixMs, u.windowEndUnixMs]);
  }
  const labels = [...rows.keys()].sort((a, b) => a.localeCompare(b));
  const labelWidth = Math.min(MAX_LABEL, Math.max(0, ...labels.map((l) => l.length)));
  const columns = Math.max(MIN_CHART_COLUMNS, width - labelWidth - 1);
  const end = Math.max(plan.horizonEndUnixMs, now + 1);
  const msPerColumn = (end - now) / columns;
  const column = (t: number) => Math.floor((t - now) / msPerColumn);

  const paint = (cells: string[], from: number, to: number, ch: string) => {
    // Every run is at least one column wide, however short, so that none disappears from the chart.
    const first = Math.max(0, column(from));
    const last = Math.min(columns - 1, Math.max(column(from), Math.ceil((to - now) / msPerColumn) - 1));
    for (let c = first; c <= last; c++) cells[c] = ch;
  };

  const ticks = hourTicks(now, end, msPerColumn);
  const axis = Array<string>(columns).fill(EMPTY);
  const scale = Array<string>(columns).fill(EMPTY);
  for (const t of ticks) {
    const c = column(t);
    if (c < 0 || c >= columns) continue;
    scale[c] = '|';
    const hh = String(new Date(t).getHours()).padStart(2, '0');
    if (c + hh.length <= columns) axis.splice(c, hh.length, ...hh);
  }
  const pad = (s: string) => (s.length > labelWidth ? `${s.slice(0, labelWidth - 1)}…` : s.padEnd(labelWidth));
  const lines = [`${pad('')} ${axis.join('')}`.trimEnd(), `${pad('')} ${scale.join('')}`.trimEnd()];
  for (const label of labels) {
    const r = rows.get(label)!;
    const cells = Array<string>(columns).fill(EMPTY);
    for (const [from, to] of r.windows) paint(cells, from, to, WINDOW);
    for (const [from, to, ch] of r.slots) paint(cells, from, to, ch);
    lines.push(`${pad(label)} ${cells.join('')}`.trimEnd());
  }
  return lines.join('\n');
}

/** The local whole hours after `start` and up to `end` that get a tick, spaced for their labels. */
function hourTicks(start: number, end: number, msPerColumn: number): number[] {
  const step = TICK_HOURS.find((h) => (h * 3_600_000) / msPerColumn >= 3) ?? TICK_HOURS[TICK_HOURS.length - 1];
  const d = new Date(start);
  d.setMinutes(0, 0, 0);
  const ticks: number[] = [];
  // Local hours, so that the labels read as the clock on the wall; a step keeps to multiples of itself.
  for (d.setHours(d.getHours() + 1); d.getTime() <= end; d.setHours(d.getHours() + 1)) {
    if (d.getHours() % step === 0) ticks.push(d.getTime());
  }
  return ticks;
}
