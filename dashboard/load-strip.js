/**
 * A host's load on the timeline's axis: CPU %, disk I/O and, where the host reports it, pressure (PSI some
 * avg10 of CPU and I/O), from the samples the coordinator keeps (/api/load, then `load` events). Marked on
 * it: the host's pauses (HOST_PAUSED to HOST_RESUMED, from the history) and each budget change the
 * controller told a backup (`budget` events): so a person sees the backups steering around the load.
 */
import { useMemo } from 'preact/hooks';
import { html, size, time } from './format.js';
import { Grid, WIDTH } from './timeline.js';

const HEIGHT = 90;
const TOP = 6;
const LEVEL_COLOUR = { paused: 'var(--now)', throttled: 'var(--hypervisor)', full: '#16a34a' };

/** Periods the host was paused: [start, end) from its HOST_PAUSED and HOST_RESUMED events (end: now). */
export function pausesOf(events) {
  const out = [];
  for (const e of [...events].sort((a, b) => a.seq - b.seq)) {
    const type = e.type.replace('HISTORY_EVENT_TYPE_', '');
    if (type === 'HOST_PAUSED' && !(out.at(-1) && out.at(-1).end === undefined))
      out.push({ start: e.atUnixMs, reason: e.detail });
    if (type === 'HOST_RESUMED' && out.at(-1) && out.at(-1).end === undefined) out.at(-1).end = e.atUnixMs;
  }
  return out;
}

const line = (points, cls, stroke, dash) =>
  points.length > 1 &&
  html`<polyline
    class=${cls}
    points=${points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ')}
    fill="none"
    stroke=${stroke}
    stroke-width="1.5"
    stroke-dasharray=${dash}
  />`;

export function LoadStrip({ host, axis, now, samples, marks, pauses }) {
  const shown = useMemo(
    () => samples.filter((s) => s.atUnixMs >= axis.from && s.atUnixMs <= axis.to),
    [samples, axis.from],
  );
  const ioTop = Math.max(1, ...shown.map((s) => s.ioBytesPerSec));
  const y = (fraction) => TOP + (1 - Math.min(1, Math.max(0, fraction))) * (HEIGHT - TOP - 2);
  const series = (value) =>
    shown.flatMap((s) => {
      const v = value(s);
      return v === undefined ? [] : [[axis.x(s.atUnixMs), y(v)]];
    });
  const last = shown.at(-1);
  return html`<section id="load">
    <h2>Load of ${host}</h2>
    <div class="legend">
      <span><i class="swatch cpu"></i>CPU %</span><span><i class="swatch io"></i>disk I/O (top ${size(ioTop)}/s)</span>
      <span><i class="swatch psi"></i>pressure (PSI some avg10, CPU and I/O)</span>
      <span><i class="swatch paused-band"></i>host paused</span>
      <span
        >budget: <b style="color:var(--hypervisor)">| throttled</b> <b style="color:var(--now)">| paused</b>
        <b style="color:#16a34a">| full</b></span
      >
    </div>
    <svg width=${WIDTH} height=${HEIGHT} role="img" aria-label=${`load of ${host}`}>
      <${Grid} axis=${axis} now=${now} height=${HEIGHT} />
      ${pauses
        .filter((p) => (p.end ?? now) >= axis.from && p.start <= axis.to)
        .map(
          (p) =>
            html`<rect
              class="pause"
              x=${axis.x(p.start)}
              y="0"
              width=${Math.max(2, axis.x(p.end ?? now) - axis.x(p.start))}
              height=${HEIGHT}
              fill="rgba(208, 49, 45, 0.12)"
              ><title>host paused ${time(p.start)}–${p.end ? time(p.end) : 'now'}: ${p.reason}</title></rect
            >`,
        )}
      ${line(
        series((s) => s.cpuPercent / 100),
        'cpu',
        'var(--cpu)',
      )}
      ${line(
        series((s) => s.ioBytesPerSec / ioTop),
        'io',
        'var(--io)',
      )}
      ${line(
        series((s) => s.waits?.cpuPressure && s.waits.cpuPressure.someAvg10 / 100),
        'psi',
        'var(--psi)',
        '3 2',
      )}
      ${line(
        series((s) => s.waits?.ioPressure && s.waits.ioPressure.someAvg10 / 100),
        'psi',
        'var(--psi)',
        '1 2',
      )}
      ${marks
        .filter((m) => m.atUnixMs >= axis.from && m.atUnixMs <= axis.to)
        .map(
          (m) =>
            html`<rect
              class=${`budget budget-${m.level}`}
              x=${axis.x(m.atUnixMs) - 1}
              y="0"
              width="2"
              height=${HEIGHT}
              fill=${LEVEL_COLOUR[m.level]}
              ><title>${time(m.atUnixMs)} ${m.vm} ${m.job}: ${m.level}, ${m.reason}</title></rect
            >`,
        )}
      <text class="tick" x="4" y="14">100 %</text>
      <text class="tick" x="4" y=${HEIGHT - 4}>0</text>
    </svg>
    <p class="muted">
      ${
        last
          ? `${shown.length} samples; now CPU ${last.cpuPercent.toFixed(0)} %, I/O ${size(last.ioBytesPerSec)}/s`
          : 'no load samples in this range yet (the coordinator samples its host every report interval)'
      }
    </p>
  </section>`;
}
