/**
 * The planner's entry for code outside this folder (README.md draws its steps); its types are in
 * types.ts.
 */
export { planHost } from './planner';
export { estimateDurationMs } from './duration-estimate';
// For bench:storm, which proves runs left out by the planner's own rules and reports the steps' bounds.
export { HostTimeline } from './host-timeline';
export { prepare } from './plan-prepared';
export { searchPlacements } from './plan-search';
export { FAVOUR_LATE_WORK_JOBS } from './plan-favour-late';
export { REPAIR_WORK_JOBS } from './plan-repair';
export { planHosts, targetUses } from './plan-hosts';
