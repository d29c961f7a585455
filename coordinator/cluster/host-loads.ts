/**
 * Each member's host load, on its way to the leader's start gate: every member samples its own host and
 * publishes the sample under `load/<host>` with its registration lease's lifetime (a member that dies takes
 * its host's load with it); the leader watches those keys and hands each sample to its coordinator, stamped
 * with the leader's own clock (members' clocks may differ).
 */
import type { Etcd3, Watcher } from 'etcd3';
import type { Logger } from '../../common/util/log';
import type { Clock } from '../../common/util/clock';
import type { LoadView } from '../domain/start-gate';
import type { Coordinator } from '../service/coordinator';
import type { Registration } from './cluster-view';

const loadKey = (prefix: string, host: string) => `${prefix}load/${host}`;

/** The member side: where its HostLoadMonitor's samples go. */
export function publishHostLoad(
  registration: Pick<Registration, 'put'>,
  prefix: string,
  host: string,
): (load: LoadView) => Promise<void> {
  return (load) => registration.put(loadKey(prefix, host), JSON.stringify(load));
}

/** The leader side: follows every host's published load until the returned function is called. */
export function feedHostLoads(
  client: Etcd3,
  prefix: string,
  coordinator: Pick<Coordinator, 'ensureHost' | 'setHostLoad'>,
  clock: Clock,
  log: Logger,
): () => void {
  let watcher: Watcher | undefined;
  let stopped = false;
  const feed = (key: string, value: string | undefined) => {
    const host = key.slice(`${prefix}load/`.length);
    const load = value === undefined ? undefined : { ...(JSON.parse(value) as LoadView), at: clock.now() };
    coordinator
      .ensureHost(host)
      .then(() => coordinator.setHostLoad(host, load))
      .catch((error: Error) => log.debug('could not hand a host load to the start gate', { host, error }));
  };
  client
    .getAll()
    .prefix(`${prefix}load/`)
    .strings()
    .then((loads) => {
      if (stopped) return;
      for (const [key, value] of Object.entries(loads)) feed(key, value);
    })
    .catch((error: Error) => log.warn("cannot read the members' host loads", { error }));
  client
    .watch()
    .prefix(`${prefix}load/`)
    .create()
    .then(
      (w) => {
        if (stopped) return void w.cancel();
        watcher = w;
        w.on('put', (kv) => feed(kv.key.toString(), kv.value.toString()));
        w.on('delete', (kv) => feed(kv.key.toString(), undefined));
        w.on('error', (error) => log.warn("cannot follow the members' host loads", { error }));
      },
      (error: Error) => log.warn("cannot follow the members' host loads", { error }),
    );
  return () => {
    stopped = true;
    void watcher?.cancel();
  };
}
