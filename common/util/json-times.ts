/**
 * Times in --json output: the wire's `<name>UnixMs` numbers stay (scripts do arithmetic on them) and each
 * set one gets a sibling `<name>` in ISO 8601 (UTC), so that a person reading the JSON, or a tool that
 * expects ISO times, needs no conversion. The loader's markers of proto3 `optional` fields (`_name: 'name'`,
 * a oneof of one) are dropped: the field itself says whether it is set.
 */

const UNIX_MS_KEY = /^(.+)UnixMs$/;

/** A copy of `value` (plain objects and arrays, recursively) with the ISO siblings added; 0 (unset) gets none. */
export function withIsoTimes(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withIsoTimes);
  // Buffers (bytes fields) and Dates have their own JSON form.
  if (value === null || typeof value !== 'object' || 'toJSON' in value) return value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (key.startsWith('_') && (v === key.slice(1) || v === undefined)) continue;
    out[key] = withIsoTimes(v);
    const name = UNIX_MS_KEY.exec(key)?.[1];
    if (name && typeof v === 'number' && v > 0 && !(name in value)) out[name] = new Date(v).toISOString();
  }
  return out;
}
