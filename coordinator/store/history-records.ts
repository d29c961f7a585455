/**
 * How lessor events become history records: which events are recorded, under which type, and the
 * detail text people read. Every store writes the same records.
 */
import { formatDuration } from '../../common/util/duration';
import { formatBytes } from '../../common/util/human';
import type { LessorEvent } from '../domain/events';
import type { Outcome } from '../domain/lease';
import type { HistoryRecord, HistoryType } from './store';

/** RELEASED's detail: `success, exit 0, 70.2 KiB written, took 3.324s`, or `bytes unknown` when the holder did not say. */
export function describeOutcome(o: Outcome): string {
  const consistency = o.consistency ? `, ${o.consistency === 'APPLICATION' ? 'application' : 'crash'}-consistent` : '';
  const bytes = o.bytes === undefined ? 'bytes unknown' : `${formatBytes(o.bytes)} written`;
  const text = `${o.success ? 'success' : 'failure'}, exit ${o.exitCode}, ${bytes}, took ${formatDuration(o.durationMs)}${consistency}`;
  return o.message ? `${text}: ${o.message}` : text;
}

function describe(event: LessorEvent): string {
  switch (event.type) {
    case 'granted': {
      const l = event.lease;
      // Its target in the history too: what a reader (or a checker) needs to see a target's use over time.
      const target = l.target ? `, on target ${l.target} (${formatBytes(l.budget.ioBytesPerSec)}/s of its I/O)` : '';
      const text = `fencing ${l.fencing}, ttl ${formatDuration(l.ttlMs)}${target}`;
      return event.forced ? `${text}, started on the throttled budget: ${event.forced}` : text;
    }
    case 'released':
      return describeOutcome(event.outcome);
    case 'expired':
      return `not renewed within ${formatDuration(event.lease.ttlMs)}`;
    case 'revoked':
      return event.reason;
    case 'denied':
      return `${event.reason}: ${event.message}`;
    case 'host-paused':
      return event.reason;
    case 'policy-changed':
      return JSON.stringify(event.policy);
    case 'restored':
      return `restored after restart, ttl ${formatDuration(event.lease.ttlMs)} from now`;
    case 'quiesced':
      return `guest frozen for at most ${formatDuration(event.holdMs)}; hooks: ${event.hooks.join(', ') || 'none'}`;
    case 'quiesce-failed':
      return event.reason;
    case 'thawed': {
      const how = event.autoThawed
        ? 'auto-thawed by the agent (its bound passed or the freeze was lost)'
        : "thawed on the coordinator's word";
      return `${how} after ${formatDuration(event.frozenMs)} frozen${event.message ? `: ${event.message}` : ''}`;
    }
    case 'vm-frozen':
      return `VM ${event.vm} frozen by ${event.source}: its guest backups wait for the thaw, at most until ${new Date(event.until).toISOString()}`;
    case 'vm-thawed':
      return event.lapsed
        ? `VM ${event.vm}: no thaw from ${event.source} within the freeze's bound (frozen since ${new Date(event.since).toISOString()}): guest backups no longer held`
        : `VM ${event.vm} thawed by ${event.source} after ${formatDuration(event.at - event.since)}`;
    case 'vm-migrating': {
      const what = `${event.name} started migrating ${event.direction === 'out' ? 'away from' : 'to'} this host: its hypervisor backups wait for the end`;
      const held = event.hypervisor.map((l) => l.tokenId).join(', ');
      // libvirt refuses to migrate a domain with a backup job; the token stays valid while the VM is here.
      return held
        ? `${what}; HYPERVISOR token ${held} active (libvirt refuses a migration during its backup job)`
        : what;
    }
    case 'vm-migrated':
      return `${event.name} ${event.outcome === 'arrived' ? 'arrived on this host' : event.outcome === 'left' ? 'left this host' : 'did not migrate (the migration failed)'} after ${formatDuration(event.at - event.since)}`;
    default:
      return '';
  }
}

export const HISTORY_TYPE: Record<LessorEvent['type'], HistoryType | undefined> = {
  'host-added': undefined,
  granted: 'GRANTED',
  renewed: 'RENEWED',
  restored: 'RESTORED',
  released: 'RELEASED',
  expired: 'EXPIRED',
  revoked: 'REVOKED',
  denied: 'DENIED',
  cancelled: 'CANCELLED',
  'host-paused': 'HOST_PAUSED',
  'host-resumed': 'HOST_RESUMED',
  'policy-changed': 'POLICY_CHANGED',
  quiesced: 'QUIESCED',
  'quiesce-failed': 'QUIESCE_FAILED',
  thawed: 'THAWED',
  'vm-frozen': 'VM_FROZEN',
  'vm-thawed': 'VM_THAWED',
  'vm-migrating': 'VM_MIGRATING',
  'vm-migrated': 'VM_MIGRATED',
};

export function historyFields(event: LessorEvent): Omit<HistoryRecord, 'seq' | 'type'> {
  const base = { at: event.at, detail: describe(event) };
  if ('lease' in event) {
    const l = event.lease;
    return {
      ...base,
      host: l.host,
      vm: l.vm,
      job: l.job,
      kind: l.kind,
      tokenId: l.tokenId,
      fencing: l.fencing,
      requestId: l.requestId,
    };
  }
  if ('request' in event) {
    const r = event.request;
    return {
      ...base,
      host: r.host,
      vm: r.vm,
      job: r.job,
      kind: r.kind,
      tokenId: '',
      fencing: 0,
      requestId: r.requestId,
    };
  }
  return {
    ...base,
    host: event.host,
    vm: 'vm' in event ? event.vm : '',
    job: '',
    kind: '',
    tokenId: '',
    fencing: 0,
    requestId: '',
  };
}
