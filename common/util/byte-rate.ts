/**
 * Byte rates as people write them ("500K", "10MiB/s"), for headroomctl's options and coordinator.yaml's
 * speed settings alike.
 */

const RATE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kib: 1024,
  m: 1024 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gib: 1024 ** 3,
};

/** Bytes per second: a whole number, or a number with a binary unit ("500K", "10MiB", "1.5G", "/s" optional). */
export function parseByteRate(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)(?:\/s)?$/i.exec(raw.trim());
  const unit = m ? RATE_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined)
    throw new Error(`expected bytes per second such as 500K, 10MiB or 1G (binary units), got "${raw}"`);
  const n = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(n)) throw new Error(`${raw} is too large`);
  return n;
}
