/**
 * `npm run bench:dashboard`: the dashboard at the scale issue 18 names. A real coordinator (SQLite, the
 * HTTP listener) is given `--hosts` hosts × `--vms` VMs, each with a finished guest run (every fourth a
 * hypervisor run too) made by real grants and releases, plus one host of `--wide` VMs; Debian's Chromium
 * then loads the page:
 *  - time to first render of every host as a row (?host=*), of one host (40 VMs) and of the wide host
 *    (2,000 VM rows, virtualised), the rows actually drawn, and the time from a scroll to the last row drawn;
 *  - the page's long tasks (over 50 ms, PerformanceObserver) while it loads;
 *  - the coordinator's event-loop delay (coordinator-probe.ts) during `--seconds` of grant/release churn at
 *    `--rate` cycles/s, first with no page open (the control), then with `--pages` pages open, each on
 *    its own host and its own event stream; and a grant's time to drawn on one of those pages.
 * Figures only; nothing passes or fails. Writes .bench/dashboard.json.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { Clients } from '../common/client/connection';
import { launchChromium } from '../test/helpers/chromium';
import {
  type RunningCoordinator,
  TEST_START_POLICY,
  startCoordinator,
  tempDir,
} from '../test/helpers/coordinator-process';
import { connectPlain, grant, release } from '../test/helpers/token-client';
import type { ProbeWindow } from './coordinator-probe';
import { readProbeFile } from './probe-file';
import { cpuMs, machineCpuMs } from './proc-stats';
import { stopCoordinator } from './teardown';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const WAIT_MS = 120_000;

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}

const o = {
  hosts: option('hosts', 50),
  vms: option('vms', 40),
  wide: option('wide', 2_000),
  pages: option('pages', 20),
  rate: option('rate', 40),
  seconds: option('seconds', 10),
};

const hostName = (h: number) => `bench-h${String(h).padStart(2, '0')}`;
const progress = (line: string) => process.stderr.write(`${line}\n`);

/** One finished run of each VM: grant and release through the API, as a backup would. */
async function fixture(clients: Clients): Promise<number> {
  const vms: { host: string; vm: string }[] = [];
  for (let h = 0; h < o.hosts; h++)
    for (let v = 0; v < o.vms; v++)
      vms.push({ host: hostName(h), vm: `${hostName(h)}-vm${String(v).padStart(2, '0')}` });
  for (let v = 0; v < o.wide; v++) vms.push({ host: 'bench-wide', vm: `wide-${String(v).padStart(4, '0')}` });
  let runs = 0;
  for (const [i, { host, vm }] of vms.entries()) {
    const kinds =
      i % 4 === 0 ? (['TOKEN_KIND_GUEST', 'TOKEN_KIND_HYPERVISOR'] as const) : (['TOKEN_KIND_GUEST'] as const);
    for (const kind of kinds) {
      const token = await grant(clients, { host, vm, kind, job: kind === 'TOKEN_KIND_GUEST' ? 'nightly' : 'host' });
      await release(clients, token, true, { bytes: 1_048_576 * (1 + (i % 50)), durationMs: 60_000 });
      runs++;
    }
  }
  return runs;
}

/** Collects the page's long tasks from its first script on. */
const LONG_TASKS = `window.__longTasks = []; new PerformanceObserver((l) => window.__longTasks.push(...l.getEntries().map((e) => e.duration))).observe({ type: 'longtask', buffered: true });`;

async function timed(page: Page, url: string, selector: string) {
  const started = performance.now();
  await page.goto(url);
  await page.locator(selector).first().waitFor({ timeout: WAIT_MS });
  const firstRenderMs = Math.round(performance.now() - started);
  const drawn = await page.locator(selector).count();
  // The caption under the rows counts them all: "2000 VMs; click a VM …".
  const rows = Number(((await page.locator('#timeline p.muted').first().textContent()) ?? '').split(' ')[0]);
  const longTasks = (await page.evaluate('window.__longTasks')) as number[];
  return {
    firstRenderMs,
    rows,
    drawn,
    longTasks: longTasks.length,
    longestTaskMs: Math.round(Math.max(0, ...longTasks)),
  };
}

/** `--seconds` of grant/release cycles at `--rate`, spread over the hosts, inside one probe window. */
async function churnWindow(clients: Clients, coordinator: RunningCoordinator, probeDir: string, n: number) {
  const pid = coordinator.process.pid!;
  process.kill(pid, 'SIGUSR2');
  const [cpuBefore, machineBefore] = [cpuMs(pid) ?? 0, machineCpuMs()];
  const until = Date.now() + o.seconds * 1_000;
  let cycles = 0;
  while (Date.now() < until) {
    const due = Date.now() + 1_000 / o.rate;
    const host = hostName(cycles % o.hosts);
    const token = await grant(clients, {
      host,
      vm: `${host}-vm${String(cycles % o.vms).padStart(2, '0')}`,
      job: 'churn',
    });
    await release(clients, token);
    cycles++;
    await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
  }
  process.kill(pid, 'SIGUSR2');
  const machine = machineCpuMs();
  // The coordinator's own CPU, and the machine's busy share: a delay on a saturated machine is partly its.
  const coordinatorCpuMs = (cpuMs(pid) ?? 0) - cpuBefore;
  const machineBusyPercent = Math.round(
    (100 * (machine.busy - machineBefore.busy)) / (machine.total - machineBefore.total),
  );
  const probe = await readProbeFile(
    path.join(probeDir, `${n}.probe.json`),
    (f) => JSON.parse(fs.readFileSync(f, 'utf8')) as ProbeWindow,
  );
  return { cycles, coordinatorCpuMs, machineBusyPercent, eventLoopDelayMs: probe?.eventLoopDelayMs };
}

async function main() {
  const dir = tempDir('headroom-bench-dashboard-');
  const probeDir = path.join(REPO_ROOT, '.bench', 'probe', `dashboard-${Date.now()}`);
  fs.mkdirSync(probeDir, { recursive: true });
  const config = path.join(dir, 'coordinator.yaml');
  // Every page holds one stream; the default cap (64) is above --pages.
  fs.writeFileSync(config, `${TEST_START_POLICY}http:\n  listen: 127.0.0.1:0\n`);
  let coordinator: RunningCoordinator | undefined;
  let browser: Browser | undefined;
  let clients: Clients | undefined;
  try {
    coordinator = await startCoordinator({
      host: hostName(0),
      args: ['--config', config],
      env: {
        HEADROOM_LOG: 'warn',
        NODE_OPTIONS: `--require "${path.join(__dirname, 'coordinator-probe.js')}"`,
        HEADROOM_BENCH_PROBE_DIR: probeDir,
      },
    });
    clients = connectPlain(coordinator.address);
    const base = coordinator.httpUrl!;
    progress(`fixture: ${o.hosts} hosts × ${o.vms} VMs, and bench-wide with ${o.wide} VMs`);
    const fixtureStart = performance.now();
    const runs = await fixture(clients);
    progress(`  ${runs} runs in ${Math.round(performance.now() - fixtureStart)} ms`);

    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await context.addInitScript(LONG_TASKS);
    const page = await context.newPage();
    const overview = await timed(page, `${base}/?host=*`, '#timeline text.host-row');
    const oneHost = await timed(page, `${base}/?host=${hostName(0)}`, '#timeline text.vm-row');
    const wide = await timed(page, `${base}/?host=bench-wide`, '#timeline text.vm-row');
    const scrollStart = performance.now();
    await page.locator('#timeline .rows').evaluate((e) => e.scrollTo(0, e.scrollHeight));
    await page
      .locator('#timeline text.vm-row', { hasText: `wide-${String(o.wide - 1).padStart(4, '0')}` })
      .waitFor({ timeout: WAIT_MS });
    const scrollToDrawnMs = Math.round(performance.now() - scrollStart);
    const drawnAfterScroll = await page.locator('#timeline text.vm-row').count();
    await context.close();

    progress(`churn at ${o.rate}/s for ${o.seconds} s with no page open (control)`);
    const control = await churnWindow(clients, coordinator, probeDir, 1);
    progress(`opening ${o.pages} pages, each in its own browser context on its own host`);
    const pages: Page[] = [];
    for (let i = 0; i < o.pages; i++) {
      const c = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const p = await c.newPage();
      await p.goto(`${base}/?host=${hostName(i % o.hosts)}`);
      await p.locator('header .live.on').waitFor({ timeout: WAIT_MS });
      pages.push(p);
    }
    progress(`churn at ${o.rate}/s for ${o.seconds} s with ${o.pages} pages open`);
    const withPages = await churnWindow(clients, coordinator, probeDir, 2);
    const grantStart = performance.now();
    // A name sorted first: the row is drawn without scrolling (rows are virtualised).
    const token = await grant(clients, { host: hostName(0), vm: 'aaa-new-vm', job: 'nightly' });
    await pages[0].locator('#timeline text.vm-row', { hasText: 'aaa-new-vm' }).waitFor({ timeout: WAIT_MS });
    const grantToDrawnMs = Math.round(performance.now() - grantStart);
    await release(clients, token);

    const result = {
      options: o,
      fixtureRuns: runs,
      overview,
      oneHost,
      wide: { ...wide, scrollToDrawnMs, drawnAfterScroll },
      eventLoop: { control, withPages },
      grantToDrawnMs,
    };
    const delay = (w: typeof control) =>
      w.eventLoopDelayMs
        ? `p50 ${w.eventLoopDelayMs.p50.toFixed(1)} ms, p99 ${w.eventLoopDelayMs.p99.toFixed(1)} ms, max ${w.eventLoopDelayMs.max.toFixed(1)} ms (${w.cycles} cycles; coordinator CPU ${w.coordinatorCpuMs} ms, machine ${w.machineBusyPercent} % busy)`
        : 'not measured (no probe file)';
    const page1 = (name: string, r: typeof overview) =>
      `${name}: first render ${r.firstRenderMs} ms, ${r.drawn} of ${r.rows} rows drawn, ${r.longTasks} long tasks (longest ${r.longestTaskMs} ms)`;
    console.log(
      [
        `dashboard at ${o.hosts} hosts × ${o.vms} VMs + ${o.wide} VMs on one host (${runs} runs)`,
        page1('every host (?host=*)', overview),
        page1(`one host of ${o.vms} VMs`, oneHost),
        page1(`one host of ${o.wide} VMs`, wide),
        `  scroll to the last of ${o.wide} rows: drawn after ${scrollToDrawnMs} ms (${drawnAfterScroll} rows drawn)`,
        `coordinator event-loop delay, no page: ${delay(control)}`,
        `coordinator event-loop delay, ${o.pages} pages: ${delay(withPages)}`,
        `a grant drawn on one of the ${o.pages} pages after ${grantToDrawnMs} ms`,
      ].join('\n'),
    );
    fs.mkdirSync(path.join(REPO_ROOT, '.bench'), { recursive: true });
    fs.writeFileSync(path.join(REPO_ROOT, '.bench', 'dashboard.json'), `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await browser?.close();
    clients?.close();
    if (coordinator) await stopCoordinator(coordinator);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
