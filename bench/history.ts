/**
 * `npm run bench:history`: the database's size under a long churn, with and without history retention.
 * The real store (SQLite file, WAL, durability normal) and the real lessor on a manual clock: every
 * simulated day, each of `--vms` VMs runs `--jobs` GUEST backups (grant, `--renewals` renewals, release),
 * and the retention task runs its round, as the coordinator does every 5 minutes. Prints the file's size
 * (after a WAL checkpoint) every `--every` days; writes .bench/history.json.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { ManualClock } from '../common/util/clock';
import { createLogger } from '../common/util/log';
import { Lessor } from '../coordinator/domain/lessor';
import { DEFAULT_POLICY } from '../coordinator/domain/policy';
import { HistoryRetentionTask } from '../coordinator/service/history-retention';
import { SqliteStore } from '../coordinator/store/sqlite-store';
import type { HistoryRetention } from '../coordinator/store/store';

const DAY = 86_400_000;

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}

const days = option('days', 120);
const vms = option('vms', 40);
const jobs = option('jobs', 2);
const renewals = option('renewals', 10);
const every = option('every', 10);
const keepDays = option('keep-days', 30);

/** Days run → bytes of the database file, for one run of the churn. */
async function churn(retention: HistoryRetention | undefined): Promise<{ day: number; bytes: number; rows: number }[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'headroom-bench-history-'));
  const file = path.join(dir, 'h.db');
  const store = new SqliteStore(file, 'normal');
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  let n = 0;
  const lessor = new Lessor(
    clock,
    { newId: () => `tok-${++n}` },
    {
      defaultPolicy: {
        ...DEFAULT_POLICY,
        maxGuestTokens: vms,
        startBelowCpuPercent: 0,
        hostStartBelowCpuPercent: 0,
        minStartGapMs: 0,
      },
    },
  );
  const task =
    retention && new HistoryRetentionTask({ store, retention, clock, log: createLogger({ level: 'error' }) });
  const reader = new Database(file);
  store.commit(lessor.ensureHost('h1'));
  const sizes: { day: number; bytes: number; rows: number }[] = [];
  for (let day = 1; day <= days; day++) {
    for (let j = 0; j < jobs; j++) {
      const leases = [];
      for (let v = 0; v < vms; v++) {
        const { result, events } = lessor.acquire({
          requestId: `r-${day}-${j}-${v}`,
          kind: 'GUEST',
          host: 'h1',
          vm: `vm${v}`,
          job: `job${j}`,
          expectedDurationMs: 3_600_000,
          latestStart: 0,
          windowEnd: 0,
          priority: 0,
          ttlMs: 0,
        });
        store.commit(events);
        if (result.status === 'granted') leases.push(result.lease);
      }
      for (let r = 0; r < renewals; r++) {
        clock.advance(60_000);
        for (const l of leases) store.commit(lessor.renew(l.tokenId, l.fencing).events);
      }
      for (const l of leases)
        store.commit(
          lessor.release(l.tokenId, l.fencing, {
            success: true,
            bytes: 1 << 30,
            durationMs: 600_000,
            exitCode: 0,
            message: 'ok',
          }),
        );
    }
    clock.advance(DAY - jobs * renewals * 60_000);
    await task?.round();
    if (day % every === 0) {
      reader.pragma('wal_checkpoint(TRUNCATE)');
      const rows = reader.prepare('SELECT COUNT(*) FROM history').pluck().get() as number;
      sizes.push({ day, bytes: fs.statSync(file).size, rows });
    }
  }
  reader.close();
  store.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return sizes;
}

async function main() {
  const retention = { keepDays, maxRows: 1_000_000 };
  console.log(
    `${vms} VMs × ${jobs} jobs a day, ${renewals} renewals each, ${days} days; retention keepDays ${keepDays}`,
  );
  const without = await churn(undefined);
  const withRetention = await churn(retention);
  const mb = (b: number) => (b / 1_048_576).toFixed(2).padStart(7);
  console.log('day   without retention (MB, history rows)   with retention (MB, history rows)');
  without.forEach((w, i) => {
    const r = withRetention[i];
    console.log(
      `${String(w.day).padStart(4)}  ${mb(w.bytes)} ${String(w.rows).padStart(9)}             ${mb(r.bytes)} ${String(r.rows).padStart(9)}`,
    );
  });
  fs.mkdirSync('.bench', { recursive: true });
  fs.writeFileSync(
    '.bench/history.json',
    JSON.stringify({ vms, jobs, renewals, days, retention, without, withRetention }, null, 2),
  );
}

void main();
