/**
 * Builds one validated Config from a TOML file and/or command-line flags. Both paths go through
 * the same checks, and every error names the field (`port[2].url`, `dhcp.lease_seconds`) or flag,
 * what is wrong, and what would be right.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as net from 'node:net';
import { parse as parseToml } from 'smol-toml';
import { LanpartyError } from '../util/index.js';
import { parseMac } from '../wire/index.js';
import { parseLocator } from './locator.js';
import { parseWgSection } from './wg.js';
import type { Config, DhcpConfig, PortConfig } from './types.js';

export function runtimeDir(): string {
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (xdg && fs.existsSync(xdg)) return path.join(xdg, 'lanparty');
  return path.join(os.tmpdir(), `lanparty-${process.getuid ? process.getuid() : 'user'}`);
}

export function stateDir(): string {
  const xdg = process.env.XDG_STATE_HOME;
  return path.join(xdg && xdg.length > 0 ? xdg : path.join(os.homedir(), '.local', 'state'), 'lanparty');
}

/** The ports `lanparty up` opens with no configuration: all reachable from this host only. */
export function defaultPortUrls(dir = runtimeDir()): string[] {
  return [
    'mcast://230.0.0.1:33000?localaddr=127.0.0.1&ttl=1',
    'udp://127.0.0.1:33001',
    `unixgram://${dir}/dgram.sock`,
    'tcp://127.0.0.1:33002',
    `unix://${dir}/stream.sock`,
  ];
}

/**
 * The directory of `lanparty up --private` (private = true): only this user may enter it (0700),
 * so its unix sockets are out of other users' reach whatever the sockets' own modes are.
 */
export function privateDir(dir = runtimeDir()): string {
  return path.join(dir, 'private');
}

/**
 * The ports of `lanparty up --private`: unix sockets only. udp, tcp and the multicast group on
 * loopback are open to every user of the host; a unix socket in privateDir() is not.
 */
export function privatePortUrls(dir = privateDir()): string[] {
  return [`unixgram://${dir}/dgram.sock`, `unix://${dir}/stream.sock`];
}

/**
 * Busy polling after a wakeup with frames, in microseconds (docs/speed.md); 0: off. 50 lowers
 * the added latency's p99 at light load about 2-8x per crossing (2 kHz probes, bench/RESULTS.md:
 * udp 83 -> 40 µs, unixgram 116 -> 29, tcp 103 -> 45, unix 139 -> 52 in one run). It is on by
 * default because it does not spin under a load (the addon's light-load rules): spinning then takes
 * the guests' CPU (iperf3 between two TCG guests fell to 0.80x when it did), and with those rules
 * the same guests run at 0.93-1.03x of it off across six runs.
 */
export const DEFAULT_BUSY_POLL_US = 50;
/** The share of one core busy polling's idle spinning may use on average. */
export const DEFAULT_BUSY_POLL_BUDGET_PERCENT = 20;

/** Overrides from the command line; undefined = not given. */
export interface FlagOverrides {
  config?: string;
  ports?: string[];
  macAgeSeconds?: string;
  macTableSize?: string;
  maxFrameBytes?: string;
  busyPollUs?: string;
  busyPollBudgetPercent?: string;
  dhcp?: boolean;
  subnet?: string;
  leaseFile?: string;
  controlSocket?: string;
  guests?: string[];
  /** --private: the default ports are unix sockets in privateDir(). */
  private?: boolean;
}

type Table = Record<string, unknown>;

function fail(field: string, msg: string): never {
  throw new LanpartyError('LP_ERR_CONFIG', `${field}: ${msg}`);
}

function checkKeys(t: Table, where: string, allowed: string[]): void {
  for (const k of Object.keys(t)) {
    if (!allowed.includes(k)) fail(where ? `${where}.${k}` : k, `unknown key (expected one of ${allowed.join(', ')})`);
  }
}

function table(v: unknown, field: string): Table {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(field, 'expected a table');
  return v as Table;
}

function intIn(v: unknown, field: string, min: number, max: number, fallback: number): number {
  if (v === undefined) return fallback;
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n)) fail(field, `expected a whole number, got ${JSON.stringify(v)}`);
  if (n < min || n > max) fail(field, `${n} is out of range (${min}-${max})`);
  return n;
}

function str(v: unknown, field: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') fail(field, `expected a string, got ${JSON.stringify(v)}`);
  return v;
}

function ipv4(v: unknown, field: string): string | undefined {
  const s = str(v, field);
  if (s !== undefined && !net.isIPv4(s)) fail(field, `"${s}" is not an IPv4 address`);
  return s;
}

function bool(v: unknown, field: string, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') fail(field, `expected true or false, got ${JSON.stringify(v)}`);
  return v;
}

export function parseCidr(text: string, field: string): { network: number; prefix: number } {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(text);
  if (!m || !net.isIPv4(m[1])) fail(field, `"${text}" is not an IPv4 subnet like 10.77.0.0/24`);
  const prefix = Number(m[2]);
  if (prefix < 8 || prefix > 30) fail(field, `prefix /${prefix} is out of range (8-30)`);
  const ip = m[1].split('.').reduce((a, b) => a * 256 + Number(b), 0);
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  if (((ip & ~mask) >>> 0) !== 0) fail(field, `"${text}" has host bits set; the network is ${[24, 16, 8, 0].map((s) => ((ip & mask) >>> s) & 255).join('.')}/${prefix}`);
  return { network: ip, prefix };
}

export function readConfigFile(file: string): Table {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new LanpartyError(code === 'EACCES' ? 'LP_ERR_PERMISSION' : 'LP_ERR_CONFIG', `${file}: cannot read the config file (${code}); check the path`, { cause: err });
  }
  try {
    return parseToml(text) as Table;
  } catch (err) {
    const e = err as { line?: number; column?: number; message: string };
    const where = e.line ? `:${e.line}${e.column ? ':' + e.column : ''}` : '';
    throw new LanpartyError('LP_ERR_CONFIG', `${file}${where}: not valid TOML: ${e.message.split('\n')[0]}`, { cause: err });
  }
}

/** Validates a parsed TOML document (or {}) plus flag overrides into a Config. */
export function buildConfig(doc: Table, flags: FlagOverrides = {}, source = 'defaults'): Config {
  checkKeys(doc, '', ['switch', 'port', 'dhcp', 'dns', 'control', 'guests', 'wg', 'private']);
  const { sw, peerIdleS } = switchSection(doc, flags);
  const privateMode = flags.private ?? bool(doc.private, 'private', false);
  const { ports, defaultPortCount } = portsSection(doc, flags, privateMode);

  const dhcpT = table(doc.dhcp, 'dhcp');
  checkKeys(dhcpT, 'dhcp', ['enabled', 'subnet', 'host_address', 'pool_start', 'pool_end', 'lease_seconds', 'key_by', 'router', 'dns', 'domain', 'mtu', 'lease_file', 'probe_ms', 'static', 'max_leases_per_port', 'max_leases_per_shared_port']);
  const subnet = flags.subnet ?? str(dhcpT.subnet, 'dhcp.subnet') ?? '10.77.0.0/24';
  parseCidr(subnet, flags.subnet !== undefined ? '--subnet' : 'dhcp.subnet');
  const dhcpOn = flags.dhcp ?? bool(dhcpT.enabled, 'dhcp.enabled', true);
  const dhcp = dhcpOn ? dhcpSection(dhcpT, flags) : null;
  const dnsT = table(doc.dns, 'dns');
  checkKeys(dnsT, 'dns', ['enabled']);

  const ctl = table(doc.control, 'control');
  checkKeys(ctl, 'control', ['socket']);
  const socketPath = flags.controlSocket ?? str(ctl.socket, 'control.socket') ?? path.join(runtimeDir(), 'control.sock');

  return {
    switch: sw,
    ports,
    defaultPortCount,
    privateDir: privateMode ? privateDir() : null,
    services: {
      // The virtual host exists for DHCP, and for DNS when asked for explicitly: with DHCP off
      // there are no hostnames to serve unless the user wants the responder anyway.
      subnet: dhcpOn || bool(dnsT.enabled, 'dns.enabled', false) ? subnet : null,
      hostAddress: ipv4(dhcpT.host_address, 'dhcp.host_address'),
      dhcp,
      dnsEnabled: bool(dnsT.enabled, 'dns.enabled', true),
    },
    control: { socketPath },
    guests: guestNames(doc, flags),
    peerIdleMs: peerIdleS * 1000,
    source,
  };
}

/** [switch], with the flags that override it. */
function switchSection(doc: Table, flags: FlagOverrides): { sw: Config['switch']; peerIdleS: number } {
  const sw = table(doc.switch, 'switch');
  checkKeys(sw, 'switch', ['mac_age_seconds', 'mac_table_size', 'mac_port_size', 'max_frame_bytes', 'peer_idle_seconds', 'busy_poll_us', 'busy_poll_budget_percent']);
  const macAgeS = intIn(flags.macAgeSeconds ?? sw.mac_age_seconds, flags.macAgeSeconds !== undefined ? '--mac-age' : 'switch.mac_age_seconds', 1, 86400 * 7, 300);
  const macTableSize = intIn(flags.macTableSize ?? sw.mac_table_size, flags.macTableSize !== undefined ? '--mac-table-size' : 'switch.mac_table_size', 16, 1 << 20, 8192);
  const macPortSize = intIn(sw.mac_port_size, 'switch.mac_port_size', 1, 1 << 20, macTableSize);
  const maxFrameBytes = intIn(flags.maxFrameBytes ?? sw.max_frame_bytes, flags.maxFrameBytes !== undefined ? '--max-frame' : 'switch.max_frame_bytes', 64, 69632, 65535 + 18);
  const busyPollUs = intIn(flags.busyPollUs ?? sw.busy_poll_us, flags.busyPollUs !== undefined ? '--busy-poll' : 'switch.busy_poll_us', 0, 1000, DEFAULT_BUSY_POLL_US);
  const busyPollBudgetPercent = intIn(flags.busyPollBudgetPercent ?? sw.busy_poll_budget_percent, flags.busyPollBudgetPercent !== undefined ? '--busy-poll-budget' : 'switch.busy_poll_budget_percent', 1, 100, DEFAULT_BUSY_POLL_BUDGET_PERCENT);
  const peerIdleS = intIn(sw.peer_idle_seconds, 'switch.peer_idle_seconds', 1, 86400 * 7, 300);

  return {
    sw: { macAgeMs: macAgeS * 1000, macTableSize, macPortSize: Math.min(macPortSize, macTableSize), maxFrameBytes, busyPollUs, busyPollBudgetPercent },
    peerIdleS,
  };
}

/** The ports: private mode's, --port's, the [[port]] sections' or the defaults; then [wg]; no address twice. */
function portsSection(doc: Table, flags: FlagOverrides, privateMode: boolean): { ports: PortConfig[]; defaultPortCount: number } {
  const privateField = flags.private !== undefined ? '--private' : 'private';
  let ports: PortConfig[];
  let defaultPortCount = 0;
  if (privateMode && ((flags.ports && flags.ports.length > 0) || doc.port !== undefined)) {
    fail(privateField, `picks the ports itself (unix sockets in ${privateDir()}, mode 0700); drop ${flags.ports && flags.ports.length > 0 ? '--port' : 'the [[port]] sections'} or ${privateField}`);
  }
  if (privateMode) {
    ports = privatePortUrls().map((u, i) => parseLocator(u, `private port #${i + 1}`));
    defaultPortCount = ports.length;
  } else if (flags.ports && flags.ports.length > 0) {
    ports = flags.ports.map((u, i) => parseLocator(u, `--port #${i + 1}`));
  } else if (doc.port !== undefined) {
    if (!Array.isArray(doc.port)) fail('port', 'expected an array of tables ([[port]] sections)');
    ports = doc.port.map((p, i) => {
      const t = table(p, `port[${i}]`);
      checkKeys(t, `port[${i}]`, ['url']);
      const url = str(t.url, `port[${i}].url`);
      if (url === undefined) fail(`port[${i}].url`, 'missing; every [[port]] needs url = "SCHEME://ADDRESS"');
      return parseLocator(url, `port[${i}].url`);
    });
  } else {
    ports = defaultPortUrls().map((u, i) => parseLocator(u, `default port #${i + 1}`));
    defaultPortCount = ports.length;
  }
  if (doc.wg !== undefined) ports.push(parseWgSection(doc.wg));
  const seen = new Map<string, number>();
  ports.forEach((p, i) => {
    const key = p.scheme === 'wg' ? `udp ${p.listen.host}:${p.listen.port}` : 'path' in p ? p.path : p.scheme === 'tap' ? `tap ${p.name}` : p.scheme === 'mcast' ? `mcast ${p.group}:${p.port}` : `${p.scheme === 'udp' ? 'udp' : 'tcp'} ${p.host}:${p.port}`;
    if (seen.has(key)) fail(`port[${i}].url`, `"${p.url}" uses the same address as port[${seen.get(key)}]; give each port its own address`);
    seen.set(key, i);
  });
  return { ports, defaultPortCount };
}

/** [dhcp] when DHCP is on: the pool, options, lease file and [[dhcp.static]] leases. */
function dhcpSection(dhcpT: Table, flags: FlagOverrides): DhcpConfig {
  const keyBy = str(dhcpT.key_by, 'dhcp.key_by') ?? 'mac';
  if (keyBy !== 'mac' && keyBy !== 'client-id') fail('dhcp.key_by', `"${keyBy}" is not one of mac, client-id`);
  let dnsList: string[] | undefined;
  if (dhcpT.dns !== undefined) {
    if (!Array.isArray(dhcpT.dns)) fail('dhcp.dns', 'expected an array of IPv4 addresses');
    dnsList = dhcpT.dns.map((d, i) => ipv4(d, `dhcp.dns[${i}]`)!);
  }
  const statics: DhcpConfig['staticLeases'] = [];
  if (dhcpT.static !== undefined) {
    if (!Array.isArray(dhcpT.static)) fail('dhcp.static', 'expected an array of tables ([[dhcp.static]] sections)');
    dhcpT.static.forEach((s, i) => {
      const f = `dhcp.static[${i}]`;
      const t = table(s, f);
      checkKeys(t, f, ['mac', 'name', 'address']);
      const address = ipv4(t.address, `${f}.address`);
      if (address === undefined) fail(`${f}.address`, 'missing');
      const macText = str(t.mac, `${f}.mac`);
      let mac: number | undefined;
      if (macText !== undefined) {
        try { mac = parseMac(macText); } catch (e) { fail(`${f}.mac`, (e as Error).message); }
      }
      const name = str(t.name, `${f}.name`);
      if (mac === undefined && name === undefined) fail(f, 'needs mac or name');
      statics.push({ mac, name, address });
    });
  }
  return {
    poolStart: ipv4(dhcpT.pool_start, 'dhcp.pool_start'),
    poolEnd: ipv4(dhcpT.pool_end, 'dhcp.pool_end'),
    leaseSeconds: intIn(dhcpT.lease_seconds, 'dhcp.lease_seconds', 60, 86400 * 365, 3600),
    keyBy,
    router: ipv4(dhcpT.router, 'dhcp.router'),
    dns: dnsList,
    domain: str(dhcpT.domain, 'dhcp.domain') ?? 'lan',
    mtu: dhcpT.mtu === undefined ? undefined : intIn(dhcpT.mtu, 'dhcp.mtu', 576, 65535, 1500),
    staticLeases: statics,
    leaseFile: flags.leaseFile ?? str(dhcpT.lease_file, 'dhcp.lease_file') ?? path.join(stateDir(), 'leases.json'),
    probeMs: intIn(dhcpT.probe_ms, 'dhcp.probe_ms', 0, 5000, 300),
    maxLeasesPerPort: dhcpT.max_leases_per_port === undefined ? undefined : intIn(dhcpT.max_leases_per_port, 'dhcp.max_leases_per_port', 0, 1 << 24, 0),
    maxLeasesPerSharedPort: dhcpT.max_leases_per_shared_port === undefined ? undefined : intIn(dhcpT.max_leases_per_shared_port, 'dhcp.max_leases_per_shared_port', 0, 1 << 24, 0),
  };
}

/** The guest names `up` prints QEMU options for (--guest, else guests = [...], else vm1). */
function guestNames(doc: Table, flags: FlagOverrides): string[] {
  let guests = flags.guests;
  if (guests === undefined && doc.guests !== undefined) {
    if (!Array.isArray(doc.guests) || !doc.guests.every((g) => typeof g === 'string')) fail('guests', 'expected an array of names');
    guests = doc.guests as string[];
  }
  for (const g of guests ?? []) if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(g)) fail('guests', `"${g}" is not a valid guest name (letters, digits, . _ -; up to 63)`);

  return guests ?? ['vm1'];
}

export function loadConfig(flags: FlagOverrides): Config {
  if (flags.config) return buildConfig(readConfigFile(flags.config), flags, flags.config);
  return buildConfig({}, flags, flags.ports && flags.ports.length > 0 ? 'command line' : 'defaults');
}
