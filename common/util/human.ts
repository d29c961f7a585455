/**
 * Numbers for people: bytes and rates in binary units, percentages, wall-clock times in the local time
 * zone, and relative ages ("12s ago", "in 4m12s"). Everything takes `now` as an argument, so that what is
 * printed depends only on the inputs.
 */
import { formatDuration } from './duration';

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** "512 B", "1.5 KiB", "12.3 MiB", "4.0 GiB". Three significant digits at most, like `ls -h`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '-';
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < BYTE_UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  if (u === 0) return `${Math.round(v)} B`;
  // 1023.96 KiB would print as "1024.0 KiB": move to the next unit instead.
  if (Number(v.toFixed(1)) >= 1024 && u < BYTE_UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${BYTE_UNITS[u]}`;
}

/** "12.3 MiB/s". */
export function formatRate(bytesPerSec: number): string {
  const b = formatBytes(bytesPerSec);
  return b === '-' ? b : `${b}/s`;
}

/** "12.5%", "100%" (no decimal from 100 on). */
export function formatPercent(p: number): string {
  if (!Number.isFinite(p)) return '-';
  return p >= 100 ? `${Math.round(p)}%` : `${p.toFixed(1)}%`;
}

/** A CPU budget, in percent of one core as on the wire: 25 → "0.25 core", 150 → "1.5 cores", 0 → "no limit". */
export function formatCpuShare(percentOfCore: number): string {
  if (percentOfCore === 0) return 'no limit';
  const cores = Number((percentOfCore / 100).toFixed(2));
  return `${cores} core${cores > 1 ? 's' : ''}`;
}

/** An I/O budget in bytes/s: "10.0 MiB/s", 0 → "no limit". */
export function formatIoBudget(bytesPerSec: number): string {
  return bytesPerSec === 0 ? 'no limit' : formatRate(bytesPerSec);
}

const two = (n: number) => String(n).padStart(2, '0');

const localTime = (d: Date) => `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
const localDate = (d: Date) => `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`;

/**
 * The one time format of human output: a wall-clock time in the local zone, "HH:MM:SS" on the same local
 * day as `now`, with the date in front otherwise ("2026-01-02 03:04:05"). 0 (unset on the wire) prints as
 * "-". Lists whose rows span days (history) use formatDateTime, the same format with the date always.
 */
export function formatClock(unixMs: number, now: number): string {
  if (!unixMs) return '-';
  const d = new Date(unixMs);
  return localDate(d) === localDate(new Date(now)) ? localTime(d) : formatDateTime(unixMs);
}

/** formatClock with the date always: "2026-01-02 03:04:05" (local zone); "-" for 0. */
export function formatDateTime(unixMs: number): string {
  if (!unixMs) return '-';
  const d = new Date(unixMs);
  return `${localDate(d)} ${localTime(d)}`;
}

const SPAN_UNITS = [86_400_000, 3_600_000, 60_000, 1_000];

/**
 * A span of time, rounded for reading to its two largest units and written by formatDuration: "4m12s",
 * "2h5m", "3d4h", "45s"; spans under a second stay exact ("250ms"). Negative spans print as their
 * absolute value.
 */
export function formatSpan(ms: number): string {
  const abs = Math.abs(ms);
  if (abs < 1_000) return formatDuration(Math.round(abs));
  let rest = Math.round(abs / 1_000) * 1_000;
  let kept = 0;
  let units = 0;
  for (const size of SPAN_UNITS) {
    if (rest < size && units === 0) continue;
    const n = Math.floor(rest / size);
    kept += n * size;
    rest -= n * size;
    if (++units === 2) break;
  }
  return formatDuration(kept);
}

/** "12s ago" for a time in the past, "in 4m12s" for one in the future, "-" for 0 (unset). */
export function formatRelative(unixMs: number, now: number): string {
  if (!unixMs) return '-';
  const delta = unixMs - now;
  if (Math.abs(delta) < 1000) return 'now';
  return delta < 0 ? `${formatSpan(delta)} ago` : `in ${formatSpan(delta)}`;
}

/** "12:04:10 (in 3m20s)": a time and how far away it is. */
export function formatClockRelative(unixMs: number, now: number): string {
  if (!unixMs) return '-';
  return `${formatClock(unixMs, now)} (${formatRelative(unixMs, now)})`;
}

/** A command line as a shell would take it back: `sh -c 'exit 3'`. For messages only; we never run it through a shell. */
export function formatCommand(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w./:=@%+,-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}
