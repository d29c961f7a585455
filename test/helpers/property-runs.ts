/**
 * How many cases the property tests run, set in one place. The counts written in the tests are the full
 * ones, which `npm test` and CI run; HEADROOM_PROPERTY_SCALE multiplies them all (0.1 for a quick pass while
 * editing, 10 for a soak).
 */
const setting = process.env.HEADROOM_PROPERTY_SCALE ?? '1';
const scale = Number(setting);
if (!(scale > 0)) throw new Error(`HEADROOM_PROPERTY_SCALE must be a positive number, not "${setting}"`);

/** The number of runs for a property whose full count is `full`. */
export function propertyRuns(full: number): number {
  return Math.max(1, Math.round(full * scale));
}
