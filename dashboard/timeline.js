/**
 * The timelines: one host's VMs (its runs and planned slots), or every host at once, one row each, that a
 * click expands into that host's VMs. Rows are virtualised: only those in the scrolled viewport (and a few
 * around it) are drawn, so a host of 2,000 VMs costs what one of 30 does. The axis (axisOf) is shared with
 * the load strip, so load and runs line up.
 */
import { useMemo, useState } from 'preact/hooks';
import { html, kindOf, time } from './format.js';

export const LEFT = 150;
export const WIDTH = 1150;
export const ROW = 22;
/** The rows' viewport, px; rows past it are reached by scrolling. */
const VIEWPORT = 440;
/** Rows drawn beyond each edge of the viewport, so a scroll shows no gap before the next draw. */
const OVERSCAN = 6;

/** The time axis of a range: two thirds past, one third to come. */
export function axisOf(now, rangeMs) {
  const from = now - (rangeMs * 2) / 3;
  const to = now + rangeMs / 3;
  const x = (ms) => LEFT + ((Math.min(Math.max(ms, from), to) - from) / (to - from)) * (WIDTH - LEFT);
  return { from, to, x, ticks: Array.from({ length: 7 }, (_, i) => from + ((to - from) * i) / 6) };
}

export function TimeAxis({ axis }) {
  const last = axis.ticks.length - 1;
  return html`<svg class="axis" width=${WIDTH} height="16">
    ${axis.ticks.map(
      (t, i) =>
        html`<text class="tick" x=${axis.x(t)} y="12" text-anchor=${i === 0 ? 'start' : i === last ? 'end' : 'middle'}
          >${time(t)}</text
        >`,
    )}
  </svg>`;
}

/** Grid lines and the red now line, over `height` px. */
export function Grid({ axis, now, height }) {
  return html`<g>
    ${axis.ticks.map((t) => html`<line x1=${axis.x(t)} x2=${axis.x(t)} y1="0" y2=${height} stroke="#e5e7eb" />`)}
    <line class="now" x1=${axis.x(now)} x2=${axis.x(now)} y1="0" y2=${height} stroke="var(--now)" stroke-width="2" />
  </g>`;
}

/** A scrolling viewport over `count` rows of ROW px that draws only rows first..last-1 (drawRows). */
function VirtualRows({ count, axis, now, drawRows, label }) {
  const [top, setTop] = useState(0);
  const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
  const last = Math.min(count, Math.ceil((top + VIEWPORT) / ROW) + OVERSCAN);
  const height = Math.max(count * ROW, ROW);
  return html`<div
    class="rows"
    style=${`max-height:${VIEWPORT}px`}
    onScroll=${(e) => setTop(e.currentTarget.scrollTop)}
  >
    <svg width=${WIDTH} height=${height} role="img" aria-label=${label}>
      <${Grid} axis=${axis} now=${now} height=${height} />
      ${drawRows(first, last)}
    </svg>
  </div>`;
}

function runBar(axis, now, r, y, key) {
  const end = r.end ?? now;
  return html`<rect
    key=${key}
    class=${`run run-${r.kind}`}
    data-kind=${r.kind}
    x=${axis.x(r.start)}
    y=${y + 4}
    width=${Math.max(2, axis.x(end) - axis.x(r.start))}
    height=${ROW - 10}
    fill=${`var(--${r.kind})`}
    ><title>${r.kind} ${r.vm} ${r.job} ${time(r.start)}–${r.end ? time(r.end) : 'running'}</title></rect
  >`;
}

const inRange = (axis, now, r) => (r.end ?? now) >= axis.from && r.start <= axis.to;

/** One host's VMs: a row each, its runs (solid) and planned slots (dashed). Clicking a VM opens its view. */
export function Timeline({ host, plan, runs, now, axis, openVm }) {
  const { rows, runsOf, slotsOf } = useMemo(() => {
    const runsOf = new Map();
    const slotsOf = new Map();
    for (const [id, r] of runs) {
      if (!inRange(axis, now, r)) continue;
      if (!runsOf.has(r.vm)) runsOf.set(r.vm, []);
      runsOf.get(r.vm).push([id, r]);
    }
    for (const s of plan?.slots ?? []) {
      if (s.endUnixMs < axis.from || s.startUnixMs > axis.to) continue;
      if (!slotsOf.has(s.vm)) slotsOf.set(s.vm, []);
      slotsOf.get(s.vm).push(s);
    }
    return { rows: [...new Set([...runsOf.keys(), ...slotsOf.keys()])].sort(), runsOf, slotsOf };
  }, [runs, plan, axis.from]);
  const drawRows = (first, last) =>
    rows.slice(first, last).map((vm, i) => {
      const y = (first + i) * ROW;
      return html`<g key=${vm}>
        <text class="vm-row" x="4" y=${y + 15} onClick=${() => openVm(vm)}>${vm}</text>
        ${(slotsOf.get(vm) ?? []).map(
          (s) =>
            html`<rect
              class="slot planned-slot"
              data-kind=${kindOf(s.kind)}
              x=${axis.x(s.startUnixMs)}
              y=${y + 2}
              width=${Math.max(2, axis.x(s.endUnixMs) - axis.x(s.startUnixMs))}
              height=${ROW - 6}
              fill="none"
              stroke=${`var(--${kindOf(s.kind)})`}
              stroke-dasharray="4 2"
              ><title>planned ${s.vm} ${s.job}</title></rect
            >`,
        )}
        ${(runsOf.get(vm) ?? []).map(([id, r]) => runBar(axis, now, r, y, id))}
      </g>`;
    });
  return html`<div>
    <${TimeAxis} axis=${axis} />
    <${VirtualRows} count=${rows.length} axis=${axis} now=${now} drawRows=${drawRows} label=${`timeline of ${host}`} />
    <p class="muted">
      ${rows.length === 0 ? 'no runs or planned slots in this range' : `${rows.length} VMs; click a VM for its runs and backups`}
    </p>
    ${
      plan?.unplaced?.length > 0 &&
      html`<p>Left out of the plan: ${plan.unplaced.map((u) => `${u.vm}/${u.job} (${u.reason})`).join('; ')}</p>`
    }
  </div>`;
}

/** Overlapping runs of one kind drawn as one bar: a host row of 40 VMs stays a few rectangles. */
function merged(runs, now) {
  const out = [];
  for (const r of [...runs].sort((a, b) => a.start - b.start)) {
    const end = r.end ?? now;
    const open = out.at(-1);
    if (open && r.start <= open.endAt) {
      open.endAt = Math.max(open.endAt, end);
      open.count++;
      if (r.end === undefined) open.end = undefined;
      else if (open.end !== undefined) open.end = Math.max(open.end, r.end);
    } else out.push({ ...r, vm: '', job: '', endAt: end, count: 1 });
  }
  return out.map((m) => ({ ...m, vm: `${m.count} run${m.count > 1 ? 's' : ''}` }));
}

/** Every host, one row each: its runs, overlapping ones merged. Clicking a host opens its timeline. */
export function Overview({ hosts, runs, now, axis, openHost }) {
  const rows = useMemo(() => {
    const ofHost = new Map(hosts.map((h) => [h.host, []]));
    for (const r of runs.values()) if (inRange(axis, now, r)) ofHost.get(r.host)?.push(r);
    return hosts.map((h) => ({
      host: h.host,
      paused: h.paused,
      bars: ['guest', 'hypervisor'].flatMap((k) =>
        merged(
          ofHost.get(h.host).filter((r) => r.kind === k),
          now,
        ),
      ),
    }));
  }, [hosts, runs, now]);
  const drawRows = (first, last) =>
    rows.slice(first, last).map((row, i) => {
      const y = (first + i) * ROW;
      return html`<g key=${row.host}>
        <text class="host-row" x="4" y=${y + 15} onClick=${() => openHost(row.host)}
          >${row.host}${row.paused ? ' (paused)' : ''}</text
        >
        ${row.bars.map((b, j) => runBar(axis, now, b, y, j))}
      </g>`;
    });
  return html`<div>
    <${TimeAxis} axis=${axis} />
    <${VirtualRows} count=${rows.length} axis=${axis} now=${now} drawRows=${drawRows} label="timeline of every host" />
    <p class="muted">${rows.length} hosts; click a host for its VMs</p>
  </div>`;
}
