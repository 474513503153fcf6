/*
 * The live web view, end to end in headless Chromium (Debian's chromium, driven by playwright-core).
 *
 *   netns lp<pid>-N-web (lo up)
 *   ┌────────────────────────────────────────────────────────────────────────────────────┐
 *   │  chromium (ip netns exec) ──http 127.0.0.1:PORT/?token=…──> lanparty up --web      │
 *   │                                                             unixgram + udp ports   │
 *   │  lanparty qemu g1 -- ... (DHCP, then pings: one answered, one into the void, so    │
 *   │                           ARP requests keep the counters moving)                   │
 *   └────────────────────────────────────────────────────────────────────────────────────┘
 * The page must refuse requests without the token (403), show g1 by name in the picture and the
 * guests table when it boots, with its lease, and show g1's port counters rising, all from the
 * event stream (no reloads).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanupAll, log, netnsSkipReason, Netns, registerCleanup, tempDir, waitFor } from '../../lab/netns.js';
import { buildGuest, guestSkipReason } from '../../lab/guest.js';
import { lanpartyMissing } from '../../lab/netns-lanparty.js';
import { launch, startUp } from '../../lab/launcher.js';
import { formatMac, macForName } from '../../src/wire/ethernet.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = netnsSkipReason() ?? guestSkipReason() ?? (existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (apt-get install chromium); the web view test drives it`);

after(cleanupAll);
before(async () => {
  if (!skip) await buildGuest();
});

test('web view: refuses without the token, shows a guest appear with its lease, and its counters rise', { skip, timeout: 300_000 }, async (t) => {
  const missing = lanpartyMissing();
  assert.equal(missing, undefined, missing);
  const { chromium } = await import('playwright-core');
  const ns = await Netns.create('web');
  const up = await startUp(ns, (dir) => `[[port]]\nurl = "unixgram://${dir}/dgram.sock"\n[[port]]\nurl = "udp://127.0.0.1:33001"\n`, ['--web', '127.0.0.1:0']);
  const urlLine = await up.line(/Live view .*http:\/\/127\.0\.0\.1:\d+\/\?token=/);
  const url = /(http:\/\/\S+)/.exec(urlLine)![1];
  const base = url.slice(0, url.indexOf('?'));
  t.diagnostic(`web view at ${base} (token withheld)`);

  // Chromium runs inside the namespace, where 127.0.0.1:PORT is lanparty's.
  const dir = tempDir('chromium');
  const wrapper = join(dir, 'chromium-in-netns');
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${ns.name} ${CHROMIUM} "$@"\n`);
  chmodSync(wrapper, 0o755);
  log(`[host] chromium ${CHROMIUM} in ${ns.name} (headless, fresh profile ${join(dir, 'profile')})`);
  const context = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: wrapper,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    timeout: 60_000,
  });
  const closing = registerCleanup('chromium', () => { void context.close(); });
  try {
    const page = context.pages()[0] ?? await context.newPage();
    const offsite: string[] = [];
    page.on('request', (r) => { if (!r.url().startsWith(base)) offsite.push(r.url()); });

    // No token, a wrong token, and the event stream without one: 403 each.
    for (const u of [base, `${base}?token=wrong`, `${base}events`, `${base}api/status`]) {
      const r = await page.goto(u);
      assert.equal(r?.status(), 403, `${u.replace(/token=[^&]+/, 'token=…')} without the right token`);
    }

    const r = await page.goto(url);
    assert.equal(r?.status(), 200);
    await page.locator('[data-testid=connection]', { hasText: 'live' }).waitFor({ timeout: 15_000 });
    await page.locator('#summary', { hasText: 'ports' }).waitFor({ timeout: 10_000 });
    const doctorText = (await page.locator('[data-testid=doctor]').textContent()) ?? '';
    t.diagnostic(`doctor panel: ${doctorText.slice(0, 200)}`);
    assert.ok(doctorText.trim().length > 0, 'the doctor panel says something (findings, "no problems", or "doctor not available")');
    assert.equal(await page.locator('[data-guest=g1]').count(), 0, 'no g1 before it boots');

    const g1 = await launch({ ns, name: 'g1', control: up.control, cmdline: { dhcp: true, ping: ['10.77.0.1', '10.77.0.99'], deadline: 60, wait: 5 } });
    const mac = formatMac(macForName('g1'));
    // The guest appears by name: in the table at once, in the picture once its MAC is learned.
    await page.locator('[data-guest=g1]').waitFor({ timeout: 30_000 });
    const node = page.locator(`#map g[data-mac="${mac}"][data-name="g1"]`);
    await node.waitFor({ timeout: 60_000 });
    await page.locator('[data-guest=g1]', { hasText: /10\.77\.0\.\d+/ }).waitFor({ timeout: 60_000 });
    await page.locator('[data-testid=leases] tr', { hasText: 'g1' }).waitFor({ timeout: 10_000 });
    await page.locator('[data-testid=events] li', { hasText: 'guest:up' }).waitFor({ timeout: 5000 });
    const rowText = await page.locator('[data-guest=g1]').textContent();
    t.diagnostic(`guests row: ${rowText}`);
    assert.match(rowText ?? '', new RegExp(mac));

    // g1's port: its traffic counters rise as the page updates itself.
    const portId = await waitFor('g1 in the MAC table panel', async () => {
      const row = page.locator('[data-testid=macs] tr', { hasText: mac });
      if (await row.count() === 0) return undefined;
      return /^(\d+) /.exec((await row.locator('td').nth(3).textContent()) ?? '')?.[1];
    }, 30_000);
    const card = page.locator(`.portcard[data-port-id="${portId}"]`);
    const rx = async () => Number(await card.getAttribute('data-rx-frames'));
    const first = await rx();
    const later = await waitFor(`port ${portId}'s rx counter to rise past ${first}`, async () => {
      const n = await rx();
      return n > first ? n : undefined;
    }, 30_000, 500);
    t.diagnostic(`port ${portId} rx frames: ${first} → ${later}`);
    assert.ok(await card.locator('polyline.rx').count() === 1, 'the port has a traffic chart');
    assert.deepEqual(offsite, [], 'every request went to lanparty itself');

    g1.signal('SIGINT');
    assert.equal(await g1.exited(), 0);
  } finally {
    await context.close();
    closing.forget();
  }
  assert.equal(await up.stop(), 0);
  await ns.destroy();
});
