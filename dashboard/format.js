/** What every part of the page shares: the htm binding, the JSON fetch, and the CLI's formats for people. */
import { h } from 'preact';
import htm from 'htm';

export const html = htm.bind(h);

export const kindOf = (k) => (k === 'TOKEN_KIND_HYPERVISOR' ? 'hypervisor' : 'guest');
export const typeOf = (t) => t.replace('HISTORY_EVENT_TYPE_', '');
export const vmLabel = (e) => e.vmName || e.vm;

// The CLI's format (common/util/human.ts), not the browser locale's: 14:03:07 today, else with the date.
const pad = (n) => String(n).padStart(2, '0');
const dateOf = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
const clockOf = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
export const time = (ms) => {
  if (!ms) return '–';
  const d = new Date(ms);
  return dateOf(d) === dateOf(new Date()) ? clockOf(d) : `${dateOf(d)} ${clockOf(d)}`;
};
// A history spans days: every row has its date, as in headroomctl history.
export const dateTime = (ms) => (ms ? `${dateOf(new Date(ms))} ${clockOf(new Date(ms))}` : '–');

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
/** 70.2 KiB, as headroomctl prints sizes. */
export const size = (bytes) => {
  if (bytes === null || bytes === undefined) return '–';
  let value = Number(bytes);
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
};
/** 3.3 s, 4 min 10 s, 2 h 5 min. */
export const duration = (ms) => {
  if (ms === null || ms === undefined) return '–';
  const s = Number(ms) / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
};

export async function get(path) {
  const response = await fetch(path);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ?? `${path}: ${response.status}`);
  return body;
}
