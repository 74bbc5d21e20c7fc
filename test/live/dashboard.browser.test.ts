import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { LiveServer, type LiveEstimate } from '../../framework/index.js';

const CHROMIUM = process.env['ANVIL_CHROMIUM'] ?? '/usr/bin/chromium';
const available = existsSync(CHROMIUM);
if (!available) console.warn(`dashboard browser test skipped: no chromium at ${CHROMIUM} (apt-get install chromium)`);

function estimate(i: number, final = false): LiveEstimate {
  const eps = 4 / Math.sqrt(i);
  return {
    series: [
      { name: 'λ1', value: 50 + Math.sin(i), lo: 50 - eps, hi: 50 + eps },
      { name: 'λ2', value: 20 + Math.cos(i), lo: 20 - eps, hi: 20 + eps },
    ],
    epsilon: eps,
    delta: 0.05,
    norm: 'spectral',
    coverage: Math.min(1, i / 20),
    blocksUsed: i,
    blocksMissing: 1,
    bytesMoved: 4096 * i,
    method: 'gram/horvitz-thompson; matrix-bernstein',
    parts: { sampling: { epsilon: eps, delta: 0.05 }, sketch: { epsilon: 0, delta: 0 } },
    final,
  };
}

describe.skipIf(!available)('dashboard in a real browser', () => {
  let server: LiveServer;
  let browser: Browser;

  beforeAll(async () => {
    server = await new LiveServer({ port: 0 }).listen();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('plots estimates as they arrive, shows a killed depot as failed, and reconnects after a restart', async () => {
    const hub = server.hub;
    const depots = ['127.0.0.1:7001', '127.0.0.1:7002', '127.0.0.1:7003'];
    hub.publish({ v: 1, type: 'job-started', jobId: 'demo', name: 'streaming PCA (test)', at: Date.now() });
    for (const d of depots) hub.publish({ v: 1, type: 'depot-health', depot: d, state: 'up', reliability: 0.95, at: Date.now() });
    for (const s of ['site-a/s1', 'site-a/s2', 'site-b/s1']) {
      hub.publish({
        v: 1,
        type: 'source-weight',
        source: s,
        weight: s === 'site-b/s1' ? 0.1 : 1,
        reliability: 0.9,
        at: Date.now(),
      });
    }
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(server.url);
    await page.waitForFunction("document.getElementById('conn')?.dataset.state === 'open'");

    for (let i = 1; i <= 5; i++)
      hub.publish({ v: 1, type: 'estimate', jobId: 'demo', seq: i, at: Date.now() + i * 100, estimate: estimate(i) });
    await page.waitForFunction('window.anvilDashboard.points >= 5');
    const before = (await page.evaluate('window.anvilDashboard.points')) as number;
    for (let i = 6; i <= 12; i++)
      hub.publish({ v: 1, type: 'estimate', jobId: 'demo', seq: i, at: Date.now() + i * 100, estimate: estimate(i) });
    await page.waitForFunction(`window.anvilDashboard.points >= ${before + 7}`);
    expect(await page.locator('#chart-estimate canvas').count()).toBeGreaterThan(0);
    expect(await page.textContent('#s-count')).toBe('12');

    hub.publish({
      v: 1,
      type: 'depot-health',
      depot: depots[1]!,
      state: 'failed',
      reliability: 0.4,
      at: Date.now(),
      reason: 'killed',
    });
    hub.publish({ v: 1, type: 'event', kind: 'failure', text: `${depots[1]} killed`, at: Date.now(), depot: depots[1]! });
    await page.waitForSelector(`tr[data-depot="${depots[1]}"][data-state="failed"]`);
    expect(await page.locator('#timeline li[data-kind="failure"]').count()).toBeGreaterThan(0);
    const faded = await page
      .locator('.source[data-source="site-b/s1"]')
      .evaluate((el) => Number((el as unknown as { style: { opacity: string } }).style.opacity));
    expect(faded).toBeLessThan(0.5);

    const dir = join(tmpdir(), 'anvil-dashboard');
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: join(dir, 'dashboard.png'), fullPage: true });

    // The server restarts on the same port: the page reconnects and redraws from the replay.
    const port = server.port;
    await server.close();
    await page.waitForFunction("document.getElementById('conn')?.dataset.state === 'closed'");
    server = await new LiveServer({ port }).listen();
    server.hub.publish({ v: 1, type: 'job-started', jobId: 'again', name: 'after restart', at: Date.now() });
    server.hub.publish({ v: 1, type: 'estimate', jobId: 'again', seq: 1, at: Date.now() + 10, estimate: estimate(1) });
    await page.waitForFunction("document.getElementById('job-name')?.textContent === 'after restart'", undefined, {
      timeout: 15_000,
    });
    expect(errors).toEqual([]);
  }, 60_000);
});
