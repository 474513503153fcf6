/**
 * The web view's layout in headless Chromium (Debian's chromium, driven by playwright-core): with a
 * busy LAN on the page (many ports with long names, a dozen MACs, DHCP leases with long hostnames),
 * at 1400 and at 800 px wide, no section overlaps another and nothing in a section is drawn outside
 * it (a table wider than its section scrolls inside its own box). A cell's text never spills over
 * the next column.
 *
 * The page is the real one (index.html, style.css and tsc's app.js); Playwright answers its
 * requests, and /events sends one snapshot, so no daemon and no socket of ours is involved.
 * Screenshots of both widths go to the temp folder (LP_WEB_SCREENSHOT_DIR to choose another) and
 * are named in the test's diagnostics.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../../lab/guest.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (apt-get install chromium); the web layout test drives it`;
const ORIGIN = 'http://lanparty.test';
const SHOTS = process.env.LP_WEB_SCREENSHOT_DIR ?? tmpdir();

/** A LAN as busy as the page should still lay out well: what `status` and doctor would send. */
function snapshot(): unknown {
  const mac = (i: number) => `52:54:00:${(0x10 + i).toString(16)}:a${i % 10}:${(0x30 + i).toString(16)}`;
  const kinds = ['unixgram', 'unixgram', 'udp', 'tcp', 'vxlan', 'wg', 'mcast', 'tap'];
  const names = [
    'unixgram /run/user/1000/lanparty/guests/build-server-01.sock', 'unixgram /run/user/1000/lanparty/guests/windows-11-test-vm.sock',
    'udp 127.0.0.1:33001', 'tcp 127.0.0.1:33002#14', 'vxlan 192.168.178.23:4789 vni 4242', 'wg peer 3f2a9c41… 203.0.113.77:51820',
    'mcast 230.0.0.1:1234 ttl 1', 'tap lanparty-host-bridge0',
  ];
  const ports = names.map((name, id) => ({
    id, name, kind: kinds[id], endpoint: name.slice(name.indexOf(' ') + 1),
    rxFrames: 123456 * (id + 1), rxBytes: 98765432 * (id + 1), txFrames: 65432 * (id + 1), txBytes: 45678901 * (id + 1),
    rates: { rxFramesPerS: 1200, txFramesPerS: 900, rxBitsPerS: 12_345_678, txBitsPerS: 9_876_543 },
    drops: { runt: 0, 'self-loop': id, 'queue-full': 3 * id, 'port-down': 0 },
  }));
  const hostnames = [
    'build-server-01.corp.example.internal', 'windows-11-test-vm-with-a-very-long-computer-name', 'alpine', 'debian-bookworm-arm64-cross-compile-runner',
    'x'.repeat(63), 'nas', 'pi-hole', 'printer-2nd-floor-east-wing-hp-laserjet-enterprise', 'g9', 'g10', 'router', 'laptop',
  ];
  const macs = hostnames.map((_, i) => ({
    mac: mac(i), vlan: i % 3 === 0 ? 0 : 100 + i, port: i % ports.length, portName: names[i % ports.length], ageS: 12.5 * i,
    ips: i % 4 === 0 ? [`10.77.0.${10 + i}`, `10.77.1.${10 + i}`] : [`10.77.0.${10 + i}`], pinned: false,
  }));
  const leases = hostnames.map((hostname, i) => ({
    mac: mac(i), ip: `10.77.0.${10 + i}`, hostname: i === 8 ? null : hostname, state: i % 5 === 4 ? 'offered' : 'bound', expiresInS: 86_000 - 977 * i,
    clientId: i % 2 === 0 ? `ff${'0123456789abcdef'.repeat(4)}${i.toString(16).padStart(2, '0')}` : `01${mac(i).replaceAll(':', '')}`,
  }));
  return {
    status: {
      version: '0.1.0', pid: 4242, uptimeS: 86_399, native: true,
      transports: kinds.map((kind, i) => ({ url: `${kind}://…`, kind, state: 'up', address: names[i], portCount: 1 })),
      ports, macs,
      services: {
        lan: { hostAddress: '10.77.0.1', hostMac: '52:54:00:00:00:01', dhcp: { leases } },
        guests: hostnames.slice(0, 6).map((name, i) => ({ name, mac: mac(i), state: 'running', transport: kinds[i], pid: 30_000 + i })),
      },
    },
    doctor: {
      available: true,
      report: {
        findings: [
          { check: 'rmem-max', problem: 'net.core.rmem_max is 212992 bytes, below the 4194304 a busy unixgram port wants;', fix: 'sysctl -w net.core.rmem_max=4194304 (and add it to /etc/sysctl.d/99-lanparty.conf)' },
          { check: 'kvm', problem: '/dev/kvm is missing: guests run under TCG, about ten times slower;', fix: 'load kvm_intel or kvm_amd, or run on a host with virtualisation enabled' },
        ],
        checks: [{ name: 'rmem-max', error: null }, { name: 'kvm', error: null }],
      },
    },
    atMs: 1_700_000_000_000,
  };
}

interface Box { x: number; y: number; w: number; h: number }
interface Layout {
  viewport: number;
  pageScrollWidth: number;
  sections: Array<{ title: string; box: Box }>;
  /** Elements drawn outside their section, after clipping by any scroll box between them. */
  spills: string[];
  /** Cells whose text is wider than the cell (drawn over the next column). */
  cellOverflows: string[];
  /** Tables wider than their section, and whether a scroll box holds them. */
  tables: Array<{ id: string; section: string; width: number; sectionWidth: number; scrolls: boolean }>;
}

/** Runs in the page: bounding boxes of the sections, of everything in them, and of every cell. */
function measure(): Layout {
  const box = (r: DOMRect) => ({ x: r.left, y: r.top, w: r.width, h: r.height });
  const sections = [...document.querySelectorAll('main > section')] as HTMLElement[];
  const title = (s: Element) => s.querySelector('h2')?.textContent ?? '?';
  const clips = (e: Element) => getComputedStyle(e).overflowX !== 'visible';
  const spills: string[] = [];
  const cellOverflows: string[] = [];
  const tables: Layout['tables'] = [];
  for (const s of sections) {
    const sr = s.getBoundingClientRect();
    const spilled = new Set<Element>();
    for (const e of s.querySelectorAll('*')) {
      // Name only the outermost element that spills, not each of its cells.
      if (e.parentElement && spilled.has(e.parentElement)) {
        spilled.add(e);
        continue;
      }
      const r = e.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;
      // Clip by every overflow box between the element and its section: what a scroll box hides is not drawn.
      let left = r.left, right = r.right;
      for (let a = e.parentElement; a && a !== s; a = a.parentElement) {
        if (!clips(a)) continue;
        const ar = a.getBoundingClientRect();
        left = Math.max(left, ar.left);
        right = Math.min(right, ar.right);
      }
      if (right <= left) continue;
      if (left < sr.left - 0.5 || right > sr.right + 0.5) {
        spilled.add(e);
        const id = e.id ? `#${e.id}` : e.tagName.toLowerCase() + (e.className && typeof e.className === 'string' ? `.${e.className}` : '');
        spills.push(`${title(s)}: ${id} "${(e.textContent ?? '').slice(0, 40)}" spans x ${left.toFixed(0)}..${right.toFixed(0)}, section x ${sr.left.toFixed(0)}..${sr.right.toFixed(0)}`);
      }
    }
    for (const c of s.querySelectorAll('th, td')) {
      const cell = c as HTMLElement;
      if (cell.scrollWidth > cell.clientWidth + 1) cellOverflows.push(`${title(s)}: "${cell.textContent}" needs ${cell.scrollWidth} px in a ${cell.clientWidth} px cell`);
    }
    for (const t of s.querySelectorAll('table')) {
      let scrolls = false;
      for (let a = t.parentElement; a && a !== s.parentElement; a = a.parentElement) {
        const o = getComputedStyle(a).overflowX;
        if (o === 'auto' || o === 'scroll') { scrolls = true; break; }
      }
      tables.push({ id: t.id, section: title(s), width: t.getBoundingClientRect().width, sectionWidth: sr.width, scrolls });
    }
  }
  return {
    viewport: window.innerWidth,
    pageScrollWidth: document.documentElement.scrollWidth,
    sections: sections.map((s) => ({ title: title(s), box: box(s.getBoundingClientRect()) })),
    spills, cellOverflows, tables,
  };
}

function overlap(a: Box, b: Box): number {
  const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
  return w > 0.5 && h > 0.5 ? w * h : 0;
}

const profile = mkdtempSync(join(tmpdir(), 'lp-web-layout-'));
let close: (() => Promise<void>) | null = null;
after(async () => {
  await close?.();
  rmSync(profile, { recursive: true, force: true });
});

test('web view layout: no section overlaps another and no table spills out of its section, at 1400 and 800 px', { skip, timeout: 120_000 }, async (t) => {
  const root = repoRoot();
  const files: Record<string, { path: string; type: string }> = {
    '/': { path: join(root, 'src/daemon/web/page/index.html'), type: 'text/html; charset=utf-8' },
    '/style.css': { path: join(root, 'src/daemon/web/page/style.css'), type: 'text/css; charset=utf-8' },
    '/app.js': { path: join(root, 'dist/src/daemon/web/page/app.js'), type: 'text/javascript; charset=utf-8' },
  };
  const events = `retry: 600000\n\nevent: snapshot\ndata: ${JSON.stringify(snapshot())}\n\n` +
    `event: lan\ndata: ${JSON.stringify({ event: 'lease:granted', data: { mac: '52:54:00:14:a4:34', ip: '10.77.0.14', hostname: 'x'.repeat(63) } })}\n\n`;

  const { chromium } = await import('playwright-core');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    timeout: 60_000,
  });
  close = () => context.close();
  const page = context.pages()[0] ?? await context.newPage();
  const offsite: string[] = [];
  await page.route('**/*', async (route) => {
    const url = new URL(route.request().url());
    if (url.origin !== ORIGIN) {
      offsite.push(url.href);
      return route.abort();
    }
    if (url.pathname === '/events') return route.fulfill({ status: 200, contentType: 'text/event-stream; charset=utf-8', body: events });
    const f = files[url.pathname];
    if (f === undefined) return route.fulfill({ status: 404, body: 'not found' });
    return route.fulfill({ status: 200, contentType: f.type, body: readFileSync(f.path) });
  });

  await page.setViewportSize({ width: 1400, height: 1000 });
  await page.goto(`${ORIGIN}/`);
  // The snapshot is drawn: every MAC and lease row, and the doctor's findings.
  await page.locator('#macs tbody tr').nth(11).waitFor({ timeout: 15_000 });
  await page.locator('#leases tbody tr').nth(11).waitFor({ timeout: 5000 });
  await page.locator('#events li').first().waitFor({ timeout: 5000 });
  assert.equal(await page.locator('.portcard').count(), 8);

  for (const width of [1400, 800]) {
    await page.setViewportSize({ width, height: 1000 });
    // Two frames: the resize is laid out and painted before the boxes are read.
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const shot = join(SHOTS, `lanparty-web-${width}.png`);
    await page.screenshot({ path: shot, fullPage: true });
    const l = await page.evaluate(measure);
    t.diagnostic(`${width} px: screenshot ${shot}; sections ${l.sections.map((s) => `${s.title} [x ${s.box.x.toFixed(0)}..${(s.box.x + s.box.w).toFixed(0)}, y ${s.box.y.toFixed(0)}..${(s.box.y + s.box.h).toFixed(0)}]`).join(', ')}`);
    t.diagnostic(`${width} px: tables ${l.tables.map((x) => `${x.id} ${x.width.toFixed(0)} px in ${x.sectionWidth.toFixed(0)} px${x.scrolls ? ' (scroll box)' : ''}`).join(', ')}`);

    assert.equal(l.viewport, width);
    assert.equal(l.sections.length, 7, 'the page has its seven sections');
    const overlaps: string[] = [];
    for (let i = 0; i < l.sections.length; i++) {
      for (let j = i + 1; j < l.sections.length; j++) {
        const area = overlap(l.sections[i].box, l.sections[j].box);
        if (area > 0) overlaps.push(`${l.sections[i].title} and ${l.sections[j].title} share ${area.toFixed(0)} px²`);
      }
    }
    assert.deepEqual(overlaps, [], `${width} px: sections overlap`);
    assert.deepEqual(l.spills, [], `${width} px: drawn outside its section`);
    assert.deepEqual(l.cellOverflows, [], `${width} px: cell text wider than its cell`);
    for (const x of l.tables) {
      assert.ok(x.width <= x.sectionWidth + 0.5 || x.scrolls, `${width} px: table #${x.id} is ${x.width} px in a ${x.sectionWidth} px section with no scroll box`);
    }
    assert.ok(l.pageScrollWidth <= width, `${width} px: the page scrolls sideways (${l.pageScrollWidth} px wide)`);
  }
  assert.deepEqual(offsite, [], 'the page asked for nothing but its own files');
});
