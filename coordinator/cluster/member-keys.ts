/**
 * Keys a member publishes under its registration lease (its hypervisor jobs, its backup runs), and how the
 * leader follows them. A member's keys go with its lease: they are put again whenever it registers anew,
 * and a put that failed is tried again until it succeeds or a newer value replaces it.
 */
import type { Etcd3, Watcher } from 'etcd3';
import type { Logger } from '../../common/util/log';
import type { Registration } from './cluster-view';

/** How long after a failed put it is tried again. */
const RETRY_MS = 1_000;

/** The member side: `publish(key, value)` puts the key under the registration lease, and keeps it there. */
export function keepPublished(
  registration: Pick<Registration, 'put' | 'onRegistered'>,
  what: string,
  log: Logger,
): { publish(key: string, value: string): Promise<void>; stop(): void } {
  // Each key's newest value, with the number of its publication.
  const last = new Map<string, { value: string; n: number }>();
  let published = 0;
  // Who waits for a key's publication `n` (or a newer one) to be in etcd.
  const waiting = new Map<string, { n: number; resolve(): void }[]>();
  // One put per key at a time, so that an older value never lands after a newer one; `again` once it is done.
  const inFlight = new Map<string, { again: boolean }>();
  const retries = new Map<string, NodeJS.Timeout>();
  let stopped = false;
  const landed = (key: string, n: number) => {
    const waiters = waiting.get(key) ?? [];
    for (const w of waiters.filter((w) => w.n <= n)) w.resolve();
    waiting.set(
      key,
      waiters.filter((w) => w.n > n),
    );
  };
  const put = (key: string) => {
    clearTimeout(retries.get(key));
    retries.delete(key);
    const newest = last.get(key);
    if (newest === undefined || stopped) return;
    const flight = inFlight.get(key);
    if (flight) return void (flight.again = true);
    const current = { again: false };
    inFlight.set(key, current);
    registration
      .put(key, newest.value)
      .then(
        () => landed(key, newest.n),
        (error: Error) => {
          log.warn(`cannot publish ${what} to the cluster yet`, { key, error });
          if (!current.again && !stopped) {
            const timer = setTimeout(() => put(key), RETRY_MS);
            timer.unref();
            retries.set(key, timer);
          }
        },
      )
      .finally(() => {
        inFlight.delete(key);
        if (current.again) put(key);
      });
  };
  registration.onRegistered(() => {
    for (const key of last.keys()) put(key);
  });
  return {
    /** Resolves once this value, or a newer one of the key, is in etcd (never, after stop()). */
    publish(key, value) {
      const n = ++published;
      last.set(key, { value, n });
      const done = new Promise<void>((resolve) => waiting.set(key, [...(waiting.get(key) ?? []), { n, resolve }]));
      put(key);
      return done;
    },
    stop() {
      stopped = true;
      for (const timer of retries.values()) clearTimeout(timer);
    },
  };
}

/** `handle(key, value)`: a key put (its value) or deleted (undefined), the key without the prefix. */
export type PrefixHandler = (key: string, value: string | undefined) => void;

/**
 * Calls `handle` for every key under `prefix` now, then for every change until the returned function is
 * called. @throws when etcd cannot be read
 */
export async function followPrefix(
  client: Etcd3,
  prefix: string,
  handle: PrefixHandler,
  what: string,
  log: Logger,
): Promise<() => Promise<void>> {
  const read = await client.getAll().prefix(prefix).exec();
  const name = (key: Buffer) => key.toString().slice(prefix.length);
  for (const kv of read.kvs) handle(name(kv.key), kv.value.toString());
  const watcher: Watcher = await client
    .watch()
    .prefix(prefix)
    .startRevision(String(BigInt(read.header.revision) + 1n))
    .create();
  watcher.on('put', (kv) => handle(name(kv.key), kv.value.toString()));
  watcher.on('delete', (kv) => handle(name(kv.key), undefined));
  watcher.on('error', (error) => log.warn(`cannot follow ${what}`, { error }));
  return () => watcher.cancel().catch(() => undefined);
}
