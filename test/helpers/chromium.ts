/** Debian's Chromium, headless, driven by playwright-core (which cannot download a browser here). */
import { type Browser, type Page, chromium } from 'playwright-core';
import { requireTool } from './require-tool';

export async function launchChromium(): Promise<Browser> {
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

/**
 * `page.goto`, again when Chromium aborted it because a network interface changed: other tests (the
 * partition and cluster netns tests, run beside this one by npm test) create and remove veth pairs at any
 * time. Chromium says so as ERR_NETWORK_CHANGED, or by replacing the navigation with its error page.
 */
export async function gotoRetrying(page: Page, url: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await page.goto(url);
      return;
    } catch (e) {
      if (
        attempt >= 3 ||
        !/ERR_NETWORK_CHANGED|interrupted by another navigation to "chrome-error/.test((e as Error).message)
      )
        throw e;
    }
  }
}
