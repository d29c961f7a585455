/**
 * The web dashboard in a real headless Chromium (Debian's, driven by playwright-core): the page the
 * coordinator serves, fed by its JSON endpoints and event stream, with runs made through real gRPC grants
 * and releases, and a backup catalog written by the catalog's own module. Screenshots go to
 * .artifacts/dashboard/ at the top of the tree, outside dist/ which each build wipes (DASHBOARD_SCREENSHOT=path
 * also writes the timeline's there: how docs/dashboard.png was made).
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { type Clients, unary } from '../../../common/client/connection';
import type { BackupRecord } from '../../../host-backup/catalog/chain-rules';
import { ManifestStore } from '../../../host-backup/catalog/manifest-store';
import {
  DIST,
  type RunningCoordinator,
  TEST_START_POLICY,
  startCoordinator,
  tempDir,
} from '../../helpers/coordinator-process';
import { verifyAll } from '../../helpers/admin-client';
import { gotoRetrying, launchChromium } from '../../helpers/chromium';
import { FakeAgent } from '../../helpers/fake-agent';
import { isRoot } from '../../helpers/require-tool';
import { acquire, connectPlain, grant, release } from '../../helpers/token-client';
import { waitFor } from '../../helpers/wait';
import { type HttpsCoordinator, startHttpsCoordinator } from '../coordinator/https-coordinator';

const ARTIFACTS = path.join(DIST, '..', '.artifacts', 'dashboard');
/** Generous: the machine may be busy; what is asserted is that it happens, not how fast. */
const WAIT_MS = 30_000;

/** A catalog as host-backup leaves it: web-1's disk with a full backup and an incremental on it. */
function writeCatalog(dir: string): void {
  const store = ManifestStore.open(dir, { create: true });
  const taken = Date.now() - 3_600_000;
  const backup = (id: string, partial: Partial<BackupRecord>): BackupRecord => ({
    id,
    vm: 'web-1',
    disk: 'vda',
    setId: `set-${id}`,
    kind: 'full',
    chainId: 'b1',
    bitmap: 'headroom-b1',
    bitmapPersistent: true,
    takenAtMs: taken,
    durationMs: 4_000,
    bytes: 64 * 1_048_576,
    fileBytes: 1_024,
    virtualSize: 64 * 1_048_576,
    consistency: 'application',
    file: `web-1/vda/${id}.qcow2`,
    sha256: createHash('sha256').update(Buffer.alloc(1_024)).digest('hex'),
    ...partial,
  });
  const full = backup('b1', { fullReason: 'the first backup of this disk', fullReasonCode: 'no-previous-backup' });
  const incremental = backup('b2', { kind: 'incremental', parentId: 'b1', takenAtMs: taken + 60_000, bytes: 196_608 });
  for (const b of [full, incremental]) {
    fs.mkdirSync(path.dirname(store.pathOf(b)), { recursive: true });
    fs.writeFileSync(store.pathOf(b), Buffer.alloc(b.fileBytes));
    store.write(b);
  }
}

describe('the web dashboard', function () {
  this.timeout(120_000);
  let coordinator: RunningCoordinator;
  let clients: Clients;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const consoleErrors: string[] = [];

  before(async () => {
    const dir = tempDir('headroom-dashboard-');
    const config = path.join(dir, 'coordinator.yaml');
    writeCatalog(path.join(dir, 'backups'));
    // The host sampled every second, so that the load strip has samples soon.
    fs.writeFileSync(
      config,
      `${TEST_START_POLICY}  reportInterval: 1s\nhttp:\n  listen: 127.0.0.1:0\nbackups:\n  dir: ${path.join(dir, 'backups')}\n`,
    );
    coordinator = await startCoordinator({ host: 'dash-host', args: ['--config', config] });
    clients = connectPlain(coordinator.address);
    browser = await launchChromium();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(e.message));
    fs.mkdirSync(ARTIFACTS, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    clients?.close();
    await coordinator?.stop();
  });

  it('shows the host timeline with a guest run and a hypervisor run, with no console errors', async () => {
    const guest = await grant(clients, { kind: 'TOKEN_KIND_GUEST', vm: 'web-1', job: 'nightly' });
    await release(clients, guest);
    const hypervisor = await grant(clients, { kind: 'TOKEN_KIND_HYPERVISOR', vm: 'db-1', job: 'vzdump' });
    await release(clients, hypervisor);

    const started = Date.now();
    await page.goto(`${coordinator.httpUrl}/`);
    await page.locator('#timeline rect.run-guest').first().waitFor({ timeout: WAIT_MS });
    await page.locator('#timeline rect.run-hypervisor').first().waitFor({ timeout: WAIT_MS });
    console.log(`      page load to both runs drawn: ${Date.now() - started} ms`);
    assert.deepEqual(await page.locator('#timeline text.vm-row').allTextContents(), ['db-1', 'web-1']);
    // The CLI's time format, whatever the browser's locale: 24-hour, the date only for another day.
    for (const tick of await page.locator('#timeline text.tick').allTextContents())
      assert.match(tick, /^(\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d$/);
    await page.locator('header .live.on').waitFor({ timeout: WAIT_MS });
    await page.locator('#timeline').screenshot({ path: path.join(ARTIFACTS, 'dashboard-timeline.png') });
    assert.deepEqual(consoleErrors, []);
  });

  it('draws a grant made through the API while the page is open, from the event stream', async () => {
    const before = await page.locator('#timeline rect.run').count();
    const started = Date.now();
    const token = await grant(clients, { kind: 'TOKEN_KIND_GUEST', vm: 'mail-1', job: 'nightly' });
    await page.locator('#timeline text.vm-row', { hasText: 'mail-1' }).waitFor({ timeout: WAIT_MS });
    await page.locator('#queue tr', { hasText: 'mail-1' }).waitFor({ timeout: WAIT_MS });
    console.log(`      grant to drawn: ${Date.now() - started} ms`);
    assert.equal(await page.locator('#timeline rect.run').count(), before + 1);
    await release(clients, token);
  });

  it('shows a queued request and why it waits', async () => {
    const holder = await grant(clients, { kind: 'TOKEN_KIND_GUEST', vm: 'web-1', job: 'nightly' });
    // A second backup of web-1 waits for its first: one backup per VM at a time.
    const waiting = acquire(clients, { kind: 'TOKEN_KIND_GUEST', vm: 'web-1', job: 'weekly' });
    const row = page.locator('#queue tr.queued', { hasText: 'weekly' });
    await row.waitFor({ timeout: WAIT_MS });
    const reason = (await row.locator('.reason').textContent()) ?? '';
    assert.ok(reason.trim().length > 0, 'a queued request says what it waits for');
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-queue.png'), fullPage: true });
    if (process.env.DASHBOARD_SCREENSHOT) await page.screenshot({ path: process.env.DASHBOARD_SCREENSHOT });
    await release(clients, holder);
    await release(clients, (await waiting.done).granted!);
    assert.deepEqual(consoleErrors, []);
  });

  it('filters the history by kind and event type', async () => {
    await page.click('nav button[data-view=history]');
    await page.locator('#history tr.event').first().waitFor({ timeout: WAIT_MS });
    await page.selectOption('#history select[name=kind]', 'hypervisor');
    await page.selectOption('#history select[name=type]', 'GRANTED');
    let rows: string[] = [];
    await waitFor(
      async () => {
        rows = await page.locator('#history tr.event').allTextContents();
        return rows.length === 1 && rows[0].includes('db-1') && rows[0].includes('GRANTED');
      },
      WAIT_MS,
      'only the hypervisor grant listed',
    ).catch((e: Error) => assert.fail(`${e.message}; rows: ${JSON.stringify(rows)}`));
    assert.match(rows[0], /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/, 'a history row has its date');
    await page.locator('#history').screenshot({ path: path.join(ARTIFACTS, 'dashboard-history.png') });
    await page.click('nav button[data-view=hosts]');
    await page.locator('#hosts td', { hasText: 'dash-host' }).first().waitFor({ timeout: WAIT_MS });
    assert.deepEqual(consoleErrors, []);
  });

  it('streams committed events with their seq as the id, and catches a reconnecting reader up from Last-Event-ID', async () => {
    const { events } = (await (await fetch(`${coordinator.httpUrl}/api/history?limit=1`)).json()) as {
      events: { seq: number }[];
    };
    const lastSeen = events[0].seq;
    const abort = new AbortController();
    const response = await fetch(`${coordinator.httpUrl}/events?host=dash-host`, {
      headers: { 'last-event-id': String(lastSeen - 1) },
      signal: abort.signal,
    });
    assert.equal(response.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const token = await grant(clients, { kind: 'TOKEN_KIND_GUEST', vm: 'stream-1', job: 'nightly' });
    // The one missed before connecting, then the grant as it commits.
    while (!text.includes('"vm":"stream-1"')) text += (await reader.read()).value ?? '';
    abort.abort();
    assert.match(text, new RegExp(`^id: ${lastSeen}\\ndata: \\{"vmName":"","seq":${lastSeen},`, 'm'));
    assert.match(text, new RegExp(`^id: ${lastSeen + 1}\\ndata: .*"type":"HISTORY_EVENT_TYPE_GRANTED"`, 'm'));
    await release(clients, token);
  });

  it("opens a VM from its timeline row: its job's last run with outcome, bytes and consistency, and its chain", async () => {
    const token = await grant(clients, { kind: 'TOKEN_KIND_HYPERVISOR', vm: 'web-1', job: 'host-nightly' });
    await release(clients, token, true, {
      bytes: 3 * 1_048_576,
      durationMs: 4_200,
      consistency: 'CONSISTENCY_APPLICATION',
    });
    // One checksum verification through the coordinator (headroomctl verify): the view shows its result.
    assert.deepEqual(
      (await verifyAll(clients, { vm: 'web-1' })).map((v) => [v.id, v.ok]),
      [
        ['b1', true],
        ['b2', true],
      ],
    );
    await page.goto(`${coordinator.httpUrl}/`);
    await page.locator('#timeline text.vm-row', { hasText: 'web-1' }).click();
    const job = page.locator('#vm-jobs tr.job', { hasText: 'host-nightly' });
    await job.waitFor({ timeout: WAIT_MS });
    const cells = await job.locator('td').allTextContents();
    assert.deepEqual(
      [cells[0], cells[1], cells[3], cells[4], cells[5], cells[6]],
      ['hypervisor', 'host-nightly', 'success', '4.2 s', '3.0 MiB', 'application'],
    );
    assert.equal(new URL(page.url()).searchParams.get('vm'), 'web-1', 'the VM view has its own address');
    // The chain from the catalog: the full backup, the incremental on it, both restorable.
    const backups = await page.locator('#vm tr.backup').allTextContents();
    assert.equal(backups.length, 2);
    assert.match(backups[0], /^b1full.*restorablechecksum ok \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    assert.match(backups[1], /^└ b2incremental.*192\.0 KiB.*restorablechecksum ok /);
    await page.locator('#vm').screenshot({ path: path.join(ARTIFACTS, 'dashboard-vm.png') });
    assert.deepEqual(consoleErrors, []);
  });

  it('updates an open VM view by URL when its next run ends', async () => {
    await page.goto(`${coordinator.httpUrl}/?vm=mail-1`);
    await page.locator('header .live.on').waitFor({ timeout: WAIT_MS });
    const token = await grant(clients, { kind: 'TOKEN_KIND_GUEST', vm: 'mail-1', job: 'weekly' });
    await page.locator('#vm-jobs tr.job', { hasText: 'running since' }).waitFor({ timeout: WAIT_MS });
    await release(clients, token, false, { bytes: 1_024, message: 'pg_dump exited 1' });
    const job = page.locator('#vm-jobs tr.job', { hasText: 'weekly' });
    await job.locator('td.outcome-failed').waitFor({ timeout: WAIT_MS });
    assert.equal(await job.locator('td.bytes').textContent(), '1.0 KiB');
    assert.deepEqual(consoleErrors, []);
  });

  it("draws the host's load samples, a pause of the host and a backup's budget changes on the load strip", async () => {
    await page.goto(`${coordinator.httpUrl}/?host=dash-host`);
    await page.locator('#load polyline.cpu').waitFor({ timeout: WAIT_MS });
    await unary(clients.admin.PauseHost.bind(clients.admin), { host: 'dash-host', reason: 'maintenance window' });
    await page.locator('#load rect.pause').waitFor({ timeout: WAIT_MS });
    assert.match((await page.locator('#load rect.pause title').textContent()) ?? '', /maintenance window/);
    await unary(clients.admin.ResumeHost.bind(clients.admin), { host: 'dash-host' });

    // A guest backup throttled, then paused, by its VM's load reports: each change marked on the strip.
    await unary(clients.admin.SetPolicy.bind(clients.admin), {
      host: 'dash-host',
      throttleAboveCpuPercent: 30,
      pauseAboveCpuPercent: 60,
      resumeBelowCpuPercent: 20,
      throttledCpuPercent: 20,
      budgetDwellMs: 0,
    });
    const agent = new FakeAgent(clients, 'busy-1', 'dash-host');
    try {
      await agent.connected();
      const token = await grant(clients, { kind: 'TOKEN_KIND_GUEST', host: 'dash-host', vm: 'busy-1', job: 'restic' });
      agent.load(45);
      await agent.nextBudget();
      await page.locator('#load rect.budget-throttled').waitFor({ timeout: WAIT_MS });
      agent.load(90);
      await agent.nextBudget();
      await page.locator('#load rect.budget-paused').waitFor({ timeout: WAIT_MS });
      assert.match(
        (await page.locator('#load rect.budget-paused title').textContent()) ?? '',
        /busy-1 restic: paused, VM busy: foreground cpu 90% >= 60%/,
      );
      await release(clients, token);
    } finally {
      agent.close();
    }
    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-load.png'), fullPage: true });
    assert.deepEqual(consoleErrors, []);
  });

  it('draws only the visible rows of a host with many VMs, and every host as one row each', async () => {
    const vms = Array.from({ length: 150 }, (_, i) => `wide-${String(i).padStart(3, '0')}`);
    for (const vm of vms) await release(clients, await grant(clients, { host: 'wide-host', vm, job: 'nightly' }));
    await page.goto(`${coordinator.httpUrl}/?host=wide-host`);
    await page.locator('#timeline text.vm-row', { hasText: 'wide-000' }).waitFor({ timeout: WAIT_MS });
    const drawn = await page.locator('#timeline text.vm-row').count();
    assert.ok(drawn > 0 && drawn < 60, `${drawn} of 150 rows drawn`);
    await page.locator('#timeline .rows').evaluate((e) => e.scrollTo(0, e.scrollHeight));
    await page.locator('#timeline text.vm-row', { hasText: 'wide-149' }).waitFor({ timeout: WAIT_MS });
    assert.ok((await page.locator('#timeline text.vm-row').count()) < 60);

    await page.selectOption('select[name=host]', '*');
    await page.locator('#timeline text.host-row', { hasText: 'wide-host' }).waitFor({ timeout: WAIT_MS });
    assert.deepEqual(await page.locator('#timeline text.host-row').allTextContents(), ['dash-host', 'wide-host']);
    await page.locator('#timeline text.host-row', { hasText: 'dash-host' }).click();
    await page.locator('#timeline text.vm-row', { hasText: 'web-1' }).waitFor({ timeout: WAIT_MS });
    assert.deepEqual(consoleErrors, []);
  });

  it('answers a bad query with 400 naming the parameter, and an unknown host with 404', async () => {
    const bad = await fetch(`${coordinator.httpUrl}/api/history?limit=5000`);
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /^limit: /);
    const notNumber = await fetch(`${coordinator.httpUrl}/api/history?afterSeq=abc`);
    assert.equal(notNumber.status, 400);
    assert.match(((await notNumber.json()) as { error: string }).error, /^afterSeq: must be a non-negative integer/);
    for (const page of ['/api/plan?host=nowhere', '/api/runs?host=nowhere', '/events?host=nowhere']) {
      const unknown = await fetch(`${coordinator.httpUrl}${page}`);
      assert.equal(unknown.status, 404, page);
      assert.match(((await unknown.json()) as { error: string }).error, /nowhere/);
    }
  });
});

describe("the dashboard's event streams", function () {
  this.timeout(120_000);
  let coordinator: RunningCoordinator;

  before(async () => {
    const config = path.join(tempDir('headroom-dashboard-cap-'), 'coordinator.yaml');
    fs.writeFileSync(config, `${TEST_START_POLICY}http:\n  listen: 127.0.0.1:0\n  maxEventStreams: 2\n`);
    coordinator = await startCoordinator({ host: 'cap-host', args: ['--config', config] });
  });

  after(() => coordinator?.stop());

  it('answers one stream more than http.maxEventStreams with 503 saying so, and serves again once one closes', async () => {
    const open = () => {
      const abort = new AbortController();
      return fetch(`${coordinator.httpUrl}/events`, { signal: abort.signal }).then((response) => ({ response, abort }));
    };
    const first = await open();
    const second = await open();
    assert.deepEqual([first.response.status, second.response.status], [200, 200]);
    const refused = await open();
    assert.equal(refused.response.status, 503);
    assert.match(await refused.response.text(), /all 2 dashboard event streams are open \(http\.maxEventStreams/);
    first.abort.abort();
    let again: Awaited<ReturnType<typeof open>> | undefined;
    await waitFor(
      async () => {
        again = await open();
        if (again.response.status === 200) return true;
        await again.response.text();
        return false;
      },
      WAIT_MS,
      'a stream served once one closed',
    );
    again!.abort.abort();
    second.abort.abort();
  });
});

describe('the web dashboard off loopback', function () {
  this.timeout(120_000);
  let https: HttpsCoordinator | undefined;
  let browser: Browser | undefined;

  before(async function () {
    if (!isRoot()) {
      console.log('      skipped: a network namespace needs root');
      this.skip();
    }
    https = await startHttpsCoordinator('db', 11);
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await https?.stop();
  });

  it('refuses a browser without a client certificate of the CA', async () => {
    const context = await browser!.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    await assert.rejects(gotoRetrying(page, `${https!.coordinator.httpUrl}/`), /net::ERR_/);
    await context.close();
  });

  it('serves the page to a browser with a client certificate of the CA', async () => {
    const context = await browser!.newContext({
      ignoreHTTPSErrors: true,
      clientCertificates: [
        {
          origin: https!.coordinator.httpUrl!,
          certPath: path.join(https!.pkiDir, 'admin.pem'),
          keyPath: path.join(https!.pkiDir, 'admin.key'),
        },
      ],
    });
    const page = await context.newPage();
    await gotoRetrying(page, `${https!.coordinator.httpUrl}/`);
    await page.locator('#hosts, #timeline').first().waitFor({ timeout: WAIT_MS });
    await context.close();
  });
});
