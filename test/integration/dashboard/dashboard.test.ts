/**
 * The web dashboard in a real headless Chromium (Debian's, driven by playwright-core): the page the
 * coordinator serves, fed by its JSON endpoints and event stream, with runs made through real gRPC grants
 * and releases. Screenshots go to dist/test-artifacts/ (DASHBOARD_SCREENSHOT=path also writes the timeline's
 * there: how docs/dashboard.png was made).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Browser, type BrowserContext, type Page, chromium } from 'playwright-core';
import type { Clients } from '../../../common/client/connection';
import {
  DIST,
  type RunningCoordinator,
  TEST_START_POLICY,
  startCoordinator,
  tempDir,
} from '../../helpers/coordinator-process';
import { isRoot, requireTool } from '../../helpers/require-tool';
import { acquire, connectPlain, grant, release } from '../../helpers/token-client';
import { waitFor } from '../../helpers/wait';
import { type HttpsCoordinator, startHttpsCoordinator } from '../coordinator/https-coordinator';

const ARTIFACTS = path.join(DIST, 'test-artifacts');
/** Generous: the machine may be busy; what is asserted is that it happens, not how fast. */
const WAIT_MS = 30_000;

async function launch(): Promise<Browser> {
  const executablePath = requireTool('/usr/bin/chromium', 'chromium');
  return chromium.launch({
    executablePath,
    // Without the background-networking flags Chromium keeps trying to reach Google on a closed network.
    // playwright gives each launch a new empty profile (--user-data-dir) of its own.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
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
    fs.writeFileSync(config, `${TEST_START_POLICY}http:\n  listen: 127.0.0.1:0\n`);
    coordinator = await startCoordinator({ host: 'dash-host', args: ['--config', config] });
    clients = connectPlain(coordinator.address);
    browser = await launch();
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

  it('answers a bad query with 400 naming the parameter, and an unknown host with 404', async () => {
    const bad = await fetch(`${coordinator.httpUrl}/api/history?limit=5000`);
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /^limit: /);
    const notNumber = await fetch(`${coordinator.httpUrl}/api/history?afterSeq=abc`);
    assert.equal(notNumber.status, 400);
    assert.match(((await notNumber.json()) as { error: string }).error, /^afterSeq: must be a non-negative integer/);
    for (const page of ['/api/plan?host=nowhere', '/events?host=nowhere']) {
      const unknown = await fetch(`${coordinator.httpUrl}${page}`);
      assert.equal(unknown.status, 404, page);
      assert.match(((await unknown.json()) as { error: string }).error, /nowhere/);
    }
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
    browser = await launch();
  });

  after(async () => {
    await browser?.close();
    await https?.stop();
  });

  it('refuses a browser without a client certificate of the CA', async () => {
    const context = await browser!.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    await assert.rejects(page.goto(`${https!.coordinator.httpUrl}/`), /net::ERR_/);
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
    await page.goto(`${https!.coordinator.httpUrl}/`);
    await page.locator('#hosts, #timeline').first().waitFor({ timeout: WAIT_MS });
    await context.close();
  });
});
