/**
 * A client process of the chaos test, forked by client-fleet.ts. Each of its simulated clients has its own
 * channel and churns tokens for one (host, VM, kind) through the product's own pieces — acquireToken
 * (waits, retries with the same request id while the coordinator is down) and Renewer (renews every TTL/3,
 * gives up at its fail-safe deadline) — holds each for a random time, and releases it, retrying until the
 * coordinator answers. A few tokens are abandoned unreleased, as a crashed agent would leave them.
 * Every acquire is appended, once settled, to a JSON-lines file as a CycleRecord: what the client was told.
 *
 * Usage (by fork): chaos-client.js CONFIG_JSON; the parent sends 'stop' over IPC to end it.
 */
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { seededRandom } from '../../bench/storm-scenario';
import { Backoff, sleep } from '../../common/util/backoff';
import { errorCode, errorText, LEASE_GONE, TRANSIENT } from '../../common/client/call-status';
import { systemClock } from '../../common/util/clock';
import { type Clients, connect, unary } from '../../common/client/connection';
import { type LeaseLost, Renewer } from '../../common/client/lease-renewer';
import { createLogger } from '../../common/util/log';
import { acquireToken } from '../../common/client/token-acquirer';
import type { TokenKind } from '../../coordinator/domain/lease';
import type { v1 } from '../../proto';
import { denyReason, tokenKind } from '../../proto/enums';
import type { CycleRecord, GrantRecord, ReleaseResult } from './history-checker';

export interface ClientSpec {
  name: string;
  host: string;
  vm: string;
  kind: TokenKind;
  /** A shared target its acquires name. */
  target?: string;
}

export interface ClientProcessConfig {
  address: string;
  clients: ClientSpec[];
  seed: number;
  /** The JSON-lines file the records go to. */
  out: string;
}

/** A share of acquires carry a latest start a little ahead, so that some are denied WINDOW_CLOSED. */
const LATEST_START_SHARE = 0.15;
/** A share of tokens are dropped without a release: their leases must expire. */
const ABANDON_SHARE = 0.03;
/** Holds last up to this long: past the test's 6 s TTL, so that most need renewals (every 2 s). */
const MAX_HOLD_MS = 8_000;
/** How long a release is retried while the coordinator does not answer. */
const RELEASE_GIVE_UP_MS = 20_000;

const log = createLogger({ level: 'silent' });

function releaseOnce(c: Clients, token: v1.Token__Output): Promise<void> {
  return unary(c.token.Release.bind(c.token), {
    tokenId: token.tokenId,
    fencing: token.fencing,
    outcome: { success: true, exitCode: 0, durationMs: 0, bytes: 0, message: '' },
  }).then(() => undefined);
}

/** Releases, retrying while the coordinator is down, until it answers or RELEASE_GIVE_UP_MS passes. */
async function release(c: Clients, token: v1.Token__Output, random: () => number): Promise<ReleaseResult> {
  const backoff = new Backoff({ initialMs: 50, maxMs: 500, random });
  const giveUpAt = Date.now() + RELEASE_GIVE_UP_MS;
  for (;;) {
    try {
      await releaseOnce(c, token);
      return 'acknowledged';
    } catch (e) {
      const code = errorCode(e);
      if (code !== undefined && LEASE_GONE.has(code)) return 'refused';
      if (code === undefined || !TRANSIENT.has(code))
        throw new Error(`release of ${token.tokenId} failed: ${errorText(e)}`);
      if (Date.now() > giveUpAt) return 'unanswered';
      await sleep(backoff.next());
    }
  }
}

/** Holds a granted token for a while (renewing it), then releases or abandons it. */
async function hold(
  c: Clients,
  token: v1.Token__Output,
  receivedAt: number,
  random: () => number,
  stop: AbortSignal,
): Promise<GrantRecord> {
  const g: GrantRecord = {
    tokenId: token.tokenId,
    fencing: token.fencing,
    receivedAt,
    grantedAtCoord: token.grantedUnixMs,
    expiresAtCoord: token.expiresUnixMs,
    renewals: 0,
    release: 'not-sent',
  };
  let lost: (l: LeaseLost) => void = () => {};
  const lostPromise = new Promise<LeaseLost>((resolve) => (lost = resolve));
  const renewer = new Renewer(
    {
      client: c.token,
      clock: systemClock,
      log,
      onRenewed: (r) => {
        g.renewals++;
        g.expiresAtCoord = Math.max(g.expiresAtCoord, r.expiresUnixMs);
      },
    },
    token,
    systemClock.now(),
    (l) => lost(l),
  );
  const held = sleep(Math.floor(random() * MAX_HOLD_MS), stop).then(() => undefined);
  const why = await Promise.race([held, lostPromise]);
  renewer.stop();
  if (why) g.lost = why.message;
  if (why?.tokenVoid) return g;
  if (!why && !stop.aborted && random() < ABANDON_SHARE) {
    g.abandoned = true;
    return g;
  }
  g.releaseSentAt = Date.now();
  g.release = await release(c, token, random);
  return g;
}

async function runClient(
  config: ClientProcessConfig,
  spec: ClientSpec,
  random: () => number,
  stop: AbortSignal,
): Promise<void> {
  // Reconnect quickly after each kill (the agent's 1–10 s backoff would make most of this test waiting);
  // a channel per client, each with its own TCP connection, as separate agents would have.
  const c = connect(config.address, grpc.credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 500,
  });
  let n = 0;
  while (!stop.aborted) {
    const requestId = `${spec.name}-${++n}`;
    const latestStart = random() < LATEST_START_SHARE ? Date.now() + 300 + Math.floor(random() * 2_000) : 0;
    const record: CycleRecord = {
      client: spec.name,
      requestId,
      host: spec.host,
      vm: spec.vm,
      kind: spec.kind,
      ...(spec.target ? { target: spec.target } : {}),
      sentAt: Date.now(),
      outcome: 'cancelled',
    };
    const acquired = await acquireToken(
      {
        client: c.token,
        clock: systemClock,
        log,
        signal: stop,
        backoff: { initialMs: 50, maxMs: 500, random },
        hooks: { onDenied: (d) => (record.deniedReason = denyReason.show(d.reason)) },
      },
      {
        requestId,
        kind: tokenKind.toWire(spec.kind),
        host: spec.host,
        vm: spec.vm,
        job: 'chaos',
        expectedDurationMs: MAX_HOLD_MS / 2,
        latestStartUnixMs: latestStart,
        windowEndUnixMs: 0,
        priority: 0,
        ttlMs: 0,
        target: spec.target ?? '',
      },
    );
    if (acquired.kind === 'granted') {
      const receivedAt = Date.now();
      record.outcome = 'granted';
      record.grant = await hold(c, acquired.token, receivedAt, random, stop);
    } else if (acquired.kind === 'denied') {
      record.outcome = 'denied';
    } else if (acquired.kind === 'skipped') {
      record.outcome = 'skipped';
    } else if (acquired.kind !== 'cancelled') {
      throw new Error(`unexpected acquire result ${acquired.kind}`);
    }
    fs.appendFileSync(config.out, `${JSON.stringify(record)}\n`);
    await sleep(Math.floor(random() * 200), stop);
  }
  c.close();
}

function main(): void {
  const config = JSON.parse(process.argv[2]) as ClientProcessConfig;
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.on('message', (m) => m === 'stop' && stop());
  process.on('disconnect', stop);
  const random = seededRandom(config.seed);
  Promise.all(
    config.clients.map((spec) =>
      runClient(config, spec, seededRandom(Math.floor(random() * 2 ** 32)), controller.signal),
    ),
  ).then(
    () => process.exit(0),
    (e) => {
      process.stderr.write(`chaos client failed: ${(e as Error).stack}\n`);
      process.exit(1);
    },
  );
}

main();
