/**
 * A real Prometheus (Debian's) scraping a real coordinator's /metrics while backups are granted and
 * released over gRPC: the series exist with the values those grants and releases give, and a scrape passes
 * `promtool check metrics`. Also the listener's own behaviour: /healthz, unknown paths, methods.
 */
import { strict as assert } from 'node:assert';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Clients } from '../../../common/client/connection';
import { unary } from '../../../common/client/connection';
import {
  type RunningCoordinator,
  TEST_START_POLICY,
  startCoordinator,
  tempDir,
} from '../../helpers/coordinator-process';
import { requireTool } from '../../helpers/require-tool';
import { acquire, connectPlain, grant, release } from '../../helpers/token-client';
import { waitFor } from '../../helpers/wait';

/** A port free now on loopback, for a program that takes its port on the command line. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

describe('Prometheus scraping the coordinator', function () {
  this.timeout(180_000);
  let coordinator: RunningCoordinator;
  let clients: Clients;
  let prometheus: ChildProcess | undefined;
  let prometheusUrl = '';
  let prometheusLog = '';

  before(async function () {
    const promBin = requireTool('prometheus', 'prometheus');
    const dir = tempDir('headroom-prometheus-');
    const config = path.join(dir, 'coordinator.yaml');
    fs.writeFileSync(config, `${TEST_START_POLICY}http:\n  listen: 127.0.0.1:0\n`);
    coordinator = await startCoordinator({ host: 'prom-host', args: ['--config', config] });
    clients = connectPlain(coordinator.address);
    assert.ok(coordinator.httpUrl, 'the coordinator says where its HTTP listener is');

    const port = await freePort();
    prometheusUrl = `http://127.0.0.1:${port}`;
    const target = new URL(coordinator.httpUrl).host;
    fs.writeFileSync(
      path.join(dir, 'prometheus.yml'),
      `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: headroom\n    static_configs:\n      - targets: ['${target}']\n`,
    );
    prometheus = spawn(
      promBin,
      [
        `--config.file=${path.join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    prometheus.stderr!.on('data', (d) => (prometheusLog += d));
    await waitFor(
      async () => (await fetch(`${prometheusUrl}/-/ready`).catch(() => undefined))?.ok === true,
      60_000,
      `prometheus ready (its log:\n${prometheusLog})`,
    );
  });

  after(async () => {
    clients?.close();
    if (prometheus && prometheus.exitCode === null) {
      const gone = new Promise((resolve) => prometheus!.once('exit', resolve));
      prometheus.kill('SIGTERM');
      await gone;
    }
    await coordinator?.stop();
  });

  /** The samples of an instant query. */
  async function query(promql: string): Promise<Sample[]> {
    const response = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await response.json()) as { status: string; data: { result: Sample[] }; error?: string };
    assert.equal(body.status, 'success', body.error);
    return body.data.result;
  }

  /** Waits until Prometheus has scraped `promql` with this value (a scrape a second, generous timeout). */
  async function expectValue(promql: string, value: number) {
    let last: Sample[] = [];
    await waitFor(
      async () => {
        last = await query(promql);
        return last.length === 1 && Number(last[0].value[1]) === value;
      },
      60_000,
      `${promql} == ${value}`,
    ).catch((e: Error) => assert.fail(`${e.message}; last answer ${JSON.stringify(last)}`));
  }

  it('sees the grants, the queue, the releases with their outcome, bytes and duration, and the last success', async () => {
    const nightly = await grant(clients, { kind: 'TOKEN_KIND_GUEST', vm: 'web-1', job: 'nightly' });
    const disk = await grant(clients, { kind: 'TOKEN_KIND_GUEST', vm: 'db-1', job: 'nightly' });
    // A second GUEST backup of web-1 waits for its first: one backup per VM at a time.
    const waiting = acquire(clients, { kind: 'TOKEN_KIND_GUEST', vm: 'web-1', job: 'weekly' });
    await expectValue('headroom_tokens_active{host="prom-host",kind="guest"}', 2);
    await expectValue('headroom_queue_length{host="prom-host",kind="guest"}', 1);

    const before = Date.now() / 1000;
    await unary(clients.token.Release.bind(clients.token), {
      tokenId: nightly.tokenId,
      fencing: nightly.fencing,
      outcome: { success: true, exitCode: 0, durationMs: 120_000, bytes: 4096 },
    });
    const weekly = (await waiting.done).granted!;
    await release(clients, disk, false);
    await release(clients, weekly, true);

    const run = 'host="prom-host",kind="guest"';
    await expectValue(`headroom_grants_total{${run},reason="admitted"}`, 3);
    await expectValue(`headroom_backup_runs_total{${run},vm="web-1",backup_job="nightly",outcome="success"}`, 1);
    await expectValue(`headroom_backup_runs_total{${run},vm="db-1",backup_job="nightly",outcome="failure"}`, 1);
    await expectValue(`headroom_backup_written_bytes_total{${run},vm="web-1",backup_job="nightly"}`, 4096);
    await expectValue(`headroom_backup_duration_seconds_sum{${run},vm="web-1",backup_job="nightly"}`, 120);
    await expectValue(`headroom_backup_duration_seconds_bucket{${run},vm="web-1",backup_job="nightly",le="300"}`, 1);
    await expectValue(`headroom_token_wait_seconds_count{host="prom-host",kind="guest"}`, 3);
    await expectValue('headroom_tokens_active{host="prom-host",kind="guest"}', 0);
    await expectValue('headroom_queue_length{host="prom-host",kind="guest"}', 0);
    await expectValue('headroom_store_writable', 1);
    await expectValue('up{job="headroom"}', 1);
    const [last] = await query(
      `headroom_backup_last_success_timestamp_seconds{${run},vm="web-1",backup_job="nightly"}`,
    );
    assert.ok(last, 'the last success of web-1 nightly');
    assert.ok(Math.abs(Number(last.value[1]) - before) < 60, `${last.value[1]} is the release's time, ~${before}`);
    assert.deepEqual(
      await query(`headroom_backup_last_success_timestamp_seconds{vm="db-1"}`),
      [],
      'a VM whose only run failed has no last success',
    );
  });

  it('serves a scrape that promtool check metrics accepts', async () => {
    const text = await (await fetch(`${coordinator.httpUrl}/metrics`)).text();
    assert.match(text, /^# HELP headroom_/m);
    // promtool exits non-zero, naming the series, on any problem it finds.
    execFileSync(requireTool('promtool', 'prometheus'), ['check', 'metrics'], { input: text, stdio: 'pipe' });
  });

  it('answers /healthz SERVING, an unknown path 404 naming the pages served, and a POST 405', async () => {
    const health = await fetch(`${coordinator.httpUrl}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(await health.text(), 'SERVING\n');
    const missing = await fetch(`${coordinator.httpUrl}/nope`);
    assert.equal(missing.status, 404);
    assert.match(await missing.text(), /\/metrics, \/healthz/);
    assert.equal((await fetch(`${coordinator.httpUrl}/metrics`, { method: 'POST' })).status, 405);
  });
});
