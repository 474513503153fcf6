/**
 * lanparty web view, browser side: one EventSource on /events, and plain DOM/SVG drawing. No
 * framework and no imports: tsc compiles this file to dist/src/daemon/web/page/app.js, which the
 * daemon serves. Every string from the LAN (DHCP hostnames, port names) goes in through
 * textContent or setAttribute, never as markup.
 *
 * Stages: snapshot event → names per MAC (launcher registrations, then DHCP hostnames) → the
 * picture (switch, ports, hosts) → per-port charts (HISTORY samples of bit/s) → tables → doctor.
 * lan events (port:up, mac:move, guest:up, ...) are listed as they come.
 */
export {};

const HISTORY = 60;
const MAX_EVENTS = 200;
const SVG_NS = 'http://www.w3.org/2000/svg';

interface PortRow {
  id: number; name: string; kind: string; endpoint: string;
  rxFrames: number; rxBytes: number; txFrames: number; txBytes: number;
  rates: { rxFramesPerS: number; txFramesPerS: number; rxBitsPerS: number; txBitsPerS: number };
  drops: Record<string, number>;
}
interface MacRow { mac: string; vlan: number; port: number; portName: string; ageS: number; ips: string[] }
interface Lease { mac: string; ip: string; hostname: string | null; state: string; expiresInS: number }
interface GuestEntry { name: string; mac: string; state: string; transport: string | null; pid: number | null }
interface Finding { check: string; problem: string; fix: string }
interface Snapshot {
  status: {
    version: string; pid: number; uptimeS: number; native: boolean;
    transports: Array<{ url: string; kind: string; state: string; address: string; portCount: number }>;
    ports: PortRow[];
    macs: MacRow[];
    services: { lan?: { hostAddress?: string; hostMac?: string; dhcp?: { leases?: Lease[] } | null }; guests?: GuestEntry[] } & Record<string, unknown>;
  };
  doctor: { available: boolean; reason?: string; report?: { findings?: Finding[]; checks?: Array<{ name: string; error: string | null }> } };
  atMs: number;
}

const history = new Map<number, { rx: number[]; tx: number[] }>();

function $(id: string): HTMLElement {
  const e = document.getElementById(id);
  if (!e) throw new Error(`#${id} missing`);
  return e;
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text?: string, cls?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function svg(tag: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function si(n: number, unit: string): string {
  if (n >= 1e9) return (n / 1e9).toFixed(2) + ' G' + unit;
  if (n >= 1e6) return (n / 1e6).toFixed(2) + ' M' + unit;
  if (n >= 1e3) return (n / 1e3).toFixed(1) + ' k' + unit;
  return Math.round(n) + ' ' + unit;
}

/** Fills a table's body; each cell takes its column header's class (`wrap`: long text may break). */
function fillTable(id: string, rows: string[][], empty: string, rowAttrs?: (i: number) => Record<string, string>): void {
  const table = $(id);
  const body = table.querySelector('tbody')!;
  const columnClass = Array.from(table.querySelectorAll('thead th'), (th) => th.className);
  body.replaceChildren();
  if (rows.length === 0) {
    const tr = el('tr');
    const td = el('td', empty, 'empty');
    td.colSpan = 8;
    tr.append(td);
    body.append(tr);
    return;
  }
  rows.forEach((r, i) => {
    const tr = el('tr');
    if (rowAttrs) for (const [k, v] of Object.entries(rowAttrs(i))) tr.setAttribute(k, v);
    r.forEach((c, j) => tr.append(el('td', c, columnClass[j])));
    body.append(tr);
  });
}

/** Names per MAC: launcher registrations win over DHCP hostnames. */
function namesByMac(s: Snapshot['status']): Map<string, string> {
  const names = new Map<string, string>();
  for (const l of s.services.lan?.dhcp?.leases ?? []) if (l.hostname) names.set(l.mac, l.hostname);
  for (const g of s.services.guests ?? []) names.set(g.mac, g.name);
  if (s.services.lan?.hostMac) names.set(s.services.lan.hostMac, `lanparty ${s.services.lan.hostAddress ?? ''}`.trim());
  return names;
}

function drawMap(s: Snapshot['status'], names: Map<string, string>, guestMacs: Set<string>): void {
  const map = $('map');
  map.replaceChildren();
  const W = 900, H = 420, cx = W / 2, cy = H / 2;
  const ports = s.ports;
  const hostsOf = new Map<number, MacRow[]>();
  for (const m of s.macs) {
    const list = hostsOf.get(m.port) ?? [];
    list.push(m);
    hostsOf.set(m.port, list);
  }
  const n = Math.max(ports.length, 1);
  const lines = svg('g', {});
  const nodes = svg('g', {});
  map.append(lines, nodes);
  ports.forEach((p, i) => {
    const a = (2 * Math.PI * i) / n - Math.PI / 2;
    const px = cx + Math.cos(a) * 120, py = cy + Math.sin(a) * 110;
    const busy = p.rates.rxBitsPerS + p.rates.txBitsPerS > 0;
    lines.append(svg('line', { x1: cx, y1: cy, x2: px, y2: py, class: busy ? 'busy' : '' }));
    const g = svg('g', { 'data-port-id': p.id });
    g.append(svg('circle', { cx: px, cy: py, r: 14, class: 'port' }));
    g.append(svg('text', { x: px, y: py + 4, 'text-anchor': 'middle' }, String(p.id)));
    const title = svg('title', {}, `${p.name} (${p.kind}) ${p.endpoint}`);
    g.append(title);
    nodes.append(g);
    const hosts = hostsOf.get(p.id) ?? [];
    const spread = Math.min(Math.PI / 1.5, (2 * Math.PI) / n) * 0.8;
    hosts.slice(0, 8).forEach((h, j) => {
      const ha = a + (hosts.length > 1 ? (j / (Math.min(hosts.length, 8) - 1) - 0.5) * spread : 0);
      const r = 220 + (j % 2) * 28;
      const hx = cx + Math.cos(ha) * r * 1.55, hy = cy + Math.sin(ha) * r * 0.72;
      lines.append(svg('line', { x1: px, y1: py, x2: hx, y2: hy }));
      const name = names.get(h.mac);
      const hg = svg('g', { 'data-mac': h.mac, ...(name ? { 'data-name': name } : {}) });
      hg.append(svg('rect', { x: hx - 62, y: hy - 20, width: 124, height: 40, rx: 6, class: guestMacs.has(h.mac) ? 'host guest' : 'host' }));
      hg.append(svg('text', { x: hx, y: hy - 6, 'text-anchor': 'middle' }, name ?? h.mac));
      hg.append(svg('text', { x: hx, y: hy + 6, 'text-anchor': 'middle', class: 'sub' }, name ? h.mac : ''));
      hg.append(svg('text', { x: hx, y: hy + 16, 'text-anchor': 'middle', class: 'sub' }, h.ips.join(' ')));
      nodes.append(hg);
    });
    if (hosts.length > 8) nodes.append(svg('text', { x: px, y: py + 28, 'text-anchor': 'middle', class: 'sub' }, `+${hosts.length - 8} more`));
  });
  nodes.append(svg('rect', { x: cx - 50, y: cy - 18, width: 100, height: 36, rx: 8, class: 'switch' }));
  nodes.append(svg('text', { x: cx, y: cy + 4, 'text-anchor': 'middle', class: 'switch-label' }, 'lanparty'));
}

function sparkline(values: number[], max: number, cls: string): SVGElement {
  const pts = values.map((v, i) => `${(i * 120) / (HISTORY - 1)},${58 - (v / max) * 56}`).join(' ');
  return svg('polyline', { points: pts || '0,58', class: cls });
}

function drawPorts(s: Snapshot['status']): void {
  const box = $('ports');
  const live = new Set<number>();
  const cards: HTMLElement[] = [];
  for (const p of s.ports) {
    live.add(p.id);
    let h = history.get(p.id);
    if (!h) history.set(p.id, (h = { rx: [], tx: [] }));
    h.rx.push(p.rates.rxBitsPerS);
    h.tx.push(p.rates.txBitsPerS);
    if (h.rx.length > HISTORY) { h.rx.shift(); h.tx.shift(); }
    const card = el('div', undefined, 'portcard');
    card.dataset.portId = String(p.id);
    card.dataset.rxFrames = String(p.rxFrames);
    card.dataset.txFrames = String(p.txFrames);
    card.append(el('h3', `${p.id} ${p.name}`));
    const drops = Object.entries(p.drops).filter(([, n]) => n > 0).map(([r, n]) => `${r}=${n}`).join(' ');
    card.append(el('div', `rx ${p.rxFrames} frames / ${si(p.rxBytes, 'B')}, tx ${p.txFrames} frames / ${si(p.txBytes, 'B')}` + (drops ? `; drops ${drops}` : ''), 'nums'));
    const rates = el('div', undefined, 'nums');
    rates.append(el('span', `rx ${si(p.rates.rxBitsPerS, 'bit/s')}`, 'legend-rx'), document.createTextNode('  '), el('span', `tx ${si(p.rates.txBitsPerS, 'bit/s')}`, 'legend-tx'));
    card.append(rates);
    const max = Math.max(1, ...h.rx, ...h.tx);
    const chart = svg('svg', { viewBox: '0 0 120 60', preserveAspectRatio: 'none', 'aria-label': `traffic on port ${p.id}` });
    chart.append(sparkline(h.rx, max, 'rx'), sparkline(h.tx, max, 'tx'));
    card.append(chart);
    cards.push(card);
  }
  for (const id of [...history.keys()]) if (!live.has(id)) history.delete(id);
  box.replaceChildren(...cards);
}

function drawDoctor(d: Snapshot['doctor']): void {
  const box = $('doctor');
  box.replaceChildren();
  if (!d.available) {
    box.append(el('span', d.reason ?? 'doctor not available'));
    return;
  }
  const findings = d.report?.findings ?? [];
  if (findings.length === 0) {
    box.append(el('span', `no problems found (${d.report?.checks?.length ?? 0} checks)`, 'clean'));
    return;
  }
  const ul = el('ul');
  for (const f of findings) {
    const li = el('li');
    li.append(el('b', f.check + ': '), document.createTextNode(f.problem + ' '), el('span', f.fix, 'fix'));
    ul.append(li);
  }
  box.append(ul);
}

function render(snap: Snapshot): void {
  const s = snap.status;
  const names = namesByMac(s);
  const guests = s.services.guests ?? [];
  const macs = new Map(s.macs.map((m) => [m.mac, m] as const));
  const seenGuests = guests.filter((g) => g.state === 'running' || macs.has(g.mac));
  $('summary').textContent = `v${s.version}, pid ${s.pid}, up ${s.uptimeS} s, ${s.ports.length} ports, ${s.macs.length} MACs, data path ${s.native ? 'native' : 'JS'}`;
  drawMap(s, names, new Set(seenGuests.map((g) => g.mac)));
  fillTable('guests', seenGuests.map((g) => {
    const m = macs.get(g.mac);
    return [g.name, g.mac, m?.ips.join(', ') || '-', m ? `${m.port} ${m.portName}` : '-', g.state + (g.transport ? ` via ${g.transport}` : '')];
  }), 'no guests yet: lanparty qemu NAME -- ...', (i) => ({ 'data-guest': seenGuests[i].name }));
  fillTable('macs', s.macs.map((m) => [m.mac, names.get(m.mac) ?? '-', String(m.vlan || '-'), `${m.port} ${m.portName}`, `${m.ageS}s`, m.ips.join(', ') || '-']), '(empty)');
  const leases = s.services.lan?.dhcp?.leases;
  fillTable('leases', (leases ?? []).map((l) => [l.mac, l.ip, l.hostname ?? '-', l.state, `${l.expiresInS}s`]), leases ? '(none)' : 'DHCP off');
  drawPorts(s);
  drawDoctor(snap.doctor);
}

function addEvent(text: string): void {
  const list = $('events');
  list.prepend(el('li', `${new Date().toLocaleTimeString()} ${text}`));
  while (list.childElementCount > MAX_EVENTS) list.lastElementChild!.remove();
}

function connect(): void {
  const es = new EventSource('events');
  const conn = $('conn');
  es.onopen = () => { conn.textContent = 'live'; conn.className = 'conn up'; };
  es.onerror = () => { conn.textContent = 'offline'; conn.className = 'conn down'; };
  es.addEventListener('snapshot', (e) => render(JSON.parse((e as MessageEvent<string>).data) as Snapshot));
  es.addEventListener('lan', (e) => {
    const m = JSON.parse((e as MessageEvent<string>).data) as { event: string; data: unknown };
    addEvent(`${m.event} ${JSON.stringify(m.data)}`);
  });
}

connect();
