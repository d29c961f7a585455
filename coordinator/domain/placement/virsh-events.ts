/**
 * Parses what `virsh event --loop --event lifecycle` and `virsh list` print (libvirt 9.0), strictly: a line
 * that is not one of their forms is an error, not a guess. Pure.
 *
 *   event 'lifecycle' for domain 'web1': Suspended Migrated
 *   8c3f1a2b-…-…  web1                     (list --all --uuid --name)
 */
import type { PlacementEvent, RunState } from './types';

/** A lifecycle line: the domain's name, the event and its detail (libvirt's words). */
export interface LifecycleLine {
  domain: string;
  event: string;
  detail: string;
}

const EVENTS = [
  'Defined',
  'Undefined',
  'Started',
  'Suspended',
  'Resumed',
  'Stopped',
  'Shutdown',
  'PMSuspended',
  'Crashed',
];
const LIFECYCLE = /^event 'lifecycle' for domain '(.+)': (\S+) (.+)$/;
const LISTED = /^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}) +(\S.*)$/;

export class VirshOutputError extends Error {}

/** @throws VirshOutputError for a line that is not a lifecycle event. */
export function parseLifecycleLine(line: string): LifecycleLine {
  const m = LIFECYCLE.exec(line);
  if (!m || !EVENTS.includes(m[2])) throw new VirshOutputError(`not a lifecycle event line: ${JSON.stringify(line)}`);
  return { domain: m[1], event: m[2], detail: m[3] };
}

/** `virsh list --all --uuid --name` as (uuid, name) pairs; blank lines are the end. @throws VirshOutputError */
export function parseDomainList(output: string): { uuid: string; name: string }[] {
  return output
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .map((l) => {
      const m = LISTED.exec(l);
      if (!m) throw new VirshOutputError(`not a "uuid name" line of virsh list: ${JSON.stringify(l)}`);
      return { uuid: m[1].toLowerCase(), name: m[2] };
    });
}

/**
 * What a lifecycle event says of the placement of the domain whose UUID is `uuid`; `refresh` when only a new
 * listing can tell (a definition), undefined when it changes nothing (Shutdown: a Stopped follows).
 */
export function lifecycleEvent(line: LifecycleLine, uuid: string): PlacementEvent | 'refresh' | undefined {
  const name = line.domain;
  const migrated = line.detail === 'Migrated';
  const state = (s: RunState): PlacementEvent => ({ type: 'state', uuid, name, state: s });
  const migration = (step: Extract<PlacementEvent, { type: 'migration' }>['step']): PlacementEvent => ({
    type: 'migration',
    uuid,
    name,
    step,
  });
  switch (line.event) {
    case 'Defined':
      return 'refresh';
    case 'Undefined':
      return { type: 'removed', uuid };
    case 'Started':
      return migrated ? migration('incoming') : state('running');
    case 'Suspended':
      // Post-copy: the switch-over of a migration out went on to the destination.
      return migrated || line.detail === 'Post-copy' ? migration('outgoing') : state('paused');
    case 'PMSuspended':
      return state('paused');
    case 'Resumed':
      // Resumed Post-copy: running here while its memory still arrives; the migration ends with Resumed Migrated.
      return migrated ? migration('resumed') : state('running');
    case 'Stopped':
      return migrated ? migration('left') : line.detail === 'Failed' ? migration('failed') : state('stopped');
    case 'Crashed':
      return state('stopped');
    default:
      return undefined;
  }
}
