/**
 * Port locators (after vdeplug4's URL-like endpoints): one string names a transport and its
 * parameters, with safe defaults so a bare scheme works.
 *
 *   mcast://GROUP:PORT?localaddr=IP&ttl=N&stp=0|1   QEMU multicast group (default localaddr 127.0.0.1,
 *                                             ttl 1; stp=0 keeps it out of the peer links' spanning tree)
 *   udp://HOST:PORT?peer=HOST:PORT&accept=CIDR,...|any   QEMU dgram inet / socket,udp= (lanparty
 *                                             listens). accept: the sources taken (addresses or
 *                                             IPv4 networks); with peer= and no accept, only the
 *                                             peers. A bind beyond loopback needs one of them.
 *   unixgram:///PATH?peer=/PATH               QEMU dgram unix (lanparty listens)
 *   tcp://HOST:PORT, unix:///PATH             QEMU stream client (server=off) connects here
 *   tcp+connect://HOST:PORT, unix+connect:///PATH   lanparty connects to a QEMU stream server=on
 *   tap://NAME?create=1&address=IP/LEN&mtu=N  the host's TAP device NAME (attach; create=1 makes it, as root)
 *   vxlan://BIND[:PORT]?vni=N&remote=IP[:PORT]&group=IP&dev=IF&ttl=N&accept=static|any&age=S
 *                                             VXLAN fabric (RFC 7348, port 4789): BIND explicit, at
 *                                             least one remote or a group. Not encrypted.
 */
import * as net from 'node:net';
import { LanpartyError } from '../util/index.js';
import { parseIpv4Address, parseIpv4Cidr } from '../wire/index.js';
import type { PortConfig } from './types.js';

export const SCHEMES = ['mcast', 'udp', 'unixgram', 'tcp', 'unix', 'tcp+connect', 'unix+connect', 'tap', 'vxlan'] as const;

function fail(field: string, msg: string): never {
  throw new LanpartyError('LP_ERR_CONFIG', `${field}: ${msg}`);
}

function parseHostPort(field: string, url: string, text: string, needPort: boolean): { host: string; port: number } {
  const m = /^([^:/?]*)(?::(\d+))?$/.exec(text);
  if (!m) fail(field, `"${url}": expected HOST:PORT, got "${text}"`);
  const host = m[1] === '' ? '127.0.0.1' : m[1];
  if (!net.isIPv4(host)) fail(field, `"${url}": "${host}" is not an IPv4 address (QEMU's socket and dgram netdevs take IPv4 only)`);
  if (m[2] === undefined) {
    if (needPort) fail(field, `"${url}": missing port; write ${host}:PORT`);
    return { host, port: 0 };
  }
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) fail(field, `"${url}": port ${m[2]} is out of range (1-65535)`);
  return { host, port };
}

/** The most entries an accept list takes: each datagram is checked against all of them. */
export const MAX_ACCEPT_ENTRIES = 64;

function isLoopback(ip: string): boolean {
  return ip.split('.')[0] === '127';
}

/**
 * accept=A,B (repeatable): IPv4 addresses (one host) or networks (a.b.c.d/len), or "any"; null
 * when absent.
 */
function parseAccept(field: string, url: string, values: string[]): Array<{ network: number; prefixLength: number }> | 'any' | null {
  if (values.length === 0) return null;
  const items = values.flatMap((v) => v.split(','));
  if (items.includes('any')) {
    if (items.length > 1) fail(field, `"${url}": accept=any takes every source; drop the other accept entries or drop any`);
    return 'any';
  }
  if (items.length > MAX_ACCEPT_ENTRIES) fail(field, `"${url}": ${items.length} accept entries; at most ${MAX_ACCEPT_ENTRIES} (use wider networks)`);
  return items.map((item) => {
    if (item === '') fail(field, `"${url}": empty accept entry; write accept=ADDRESS or NETWORK/LEN, comma-separated`);
    try {
      if (!item.includes('/')) return { network: parseIpv4Address(item), prefixLength: 32 };
      const c = parseIpv4Cidr(item);
      return { network: c.network, prefixLength: c.prefixLength };
    } catch (err) {
      return fail(field, `"${url}": accept entry ${(err as Error).message}; expected an IPv4 address or network such as 192.168.1.0/24, or any`);
    }
  });
}

function isMulticast(ip: string): boolean {
  const first = Number(ip.split('.')[0]);
  return first >= 224 && first <= 239;
}

export function parseLocator(text: string, field: string): PortConfig {
  const sep = text.indexOf('://');
  if (sep < 0) fail(field, `"${text}" is not a locator; expected SCHEME://ADDRESS with scheme one of ${SCHEMES.join(', ')}`);
  const scheme = text.slice(0, sep);
  let rest = text.slice(sep + 3);
  let query = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  const params = new URLSearchParams(query);
  const allowed: Record<string, string[]> = { mcast: ['localaddr', 'ttl', 'stp'], udp: ['peer', 'accept'], unixgram: ['peer'], tap: ['create', 'address', 'mtu'], vxlan: ['vni', 'remote', 'group', 'dev', 'ttl', 'accept', 'age'] };
  for (const key of params.keys()) {
    if (!(allowed[scheme] ?? []).includes(key)) {
      fail(field, `"${text}": unknown parameter "${key}" for ${scheme}${allowed[scheme] ? ` (expected ${allowed[scheme].join(', ')})` : ' (it takes none)'}`);
    }
  }
  switch (scheme) {
    case 'mcast': {
      const { host, port } = parseHostPort(field, text, rest, true);
      if (!isMulticast(host)) fail(field, `"${text}": ${host} is not an IPv4 multicast group (224.0.0.0-239.255.255.255)`);
      const localaddr = params.get('localaddr') ?? '127.0.0.1';
      if (!net.isIPv4(localaddr)) fail(field, `"${text}": localaddr "${localaddr}" is not an IPv4 address (QEMU takes an IP only)`);
      const ttlText = params.get('ttl') ?? '1';
      const ttl = Number(ttlText);
      if (!Number.isInteger(ttl) || ttl < 0 || ttl > 255) fail(field, `"${text}": ttl ${ttlText} is out of range (0-255)`);
      const stpText = params.get('stp') ?? '1';
      if (stpText !== '0' && stpText !== '1') fail(field, `"${text}": stp=${stpText} must be 0 or 1 (0: no spanning tree hellos on this group, e.g. with untrusted guests and no other lanparty on it)`);
      return { scheme: 'mcast', url: text, group: host, port, localaddr, ttl, stp: stpText === '1' };
    }
    case 'udp': {
      const { host, port } = parseHostPort(field, text, rest, true);
      const peers = params.getAll('peer').map((p) => parseHostPort(field, text, p, true));
      const accept = parseAccept(field, text, params.getAll('accept'));
      if (accept === null && peers.length === 0 && !isLoopback(host)) {
        fail(field, `"${text}" listens beyond loopback and takes every source: any host that can reach ${host}:${port} ` +
          'could read the LAN\'s broadcasts and join it. Name the guests\' sources with accept=CIDR[,CIDR...] ' +
          '(e.g. accept=192.168.1.0/24; add 127.0.0.1 for guests on this host) or peer=HOST:PORT, or take every source with accept=any');
      }
      return { scheme: 'udp', url: text, host, port, peers, accept };
    }
    case 'unixgram': {
      if (!rest.startsWith('/')) fail(field, `"${text}": expected an absolute path, e.g. unixgram:///run/user/1000/lanparty/dgram.sock`);
      const peers = params.getAll('peer');
      for (const p of peers) if (!p.startsWith('/')) fail(field, `"${text}": peer "${p}" must be an absolute path`);
      return { scheme: 'unixgram', url: text, path: rest, peers };
    }
    case 'tcp':
    case 'tcp+connect': {
      const { host, port } = parseHostPort(field, text, rest, true);
      return { scheme: 'tcp', url: text, host, port, connect: scheme === 'tcp+connect' };
    }
    case 'unix':
    case 'unix+connect': {
      if (!rest.startsWith('/')) fail(field, `"${text}": expected an absolute path, e.g. ${scheme}:///run/user/1000/lanparty/stream.sock`);
      return { scheme: 'unix', url: text, path: rest, connect: scheme === 'unix+connect' };
    }
    case 'tap':
      return parseTap(field, text, rest, params);
    case 'vxlan':
      return parseVxlanLocator(field, text, rest, params);
    default:
      fail(field, `unknown scheme "${scheme}" in "${text}" (expected ${SCHEMES.join(', ')})`);
  }
}

/** tap://NAME?create=1&address=IP/LEN&mtu=N. address and mtu are applied only to a TAP lanparty creates. */
function parseTap(field: string, url: string, name: string, params: URLSearchParams): PortConfig {
  // The kernel's dev_valid_name: 1-15 bytes, not . or .., no /, :, or whitespace.
  if (name.length === 0 || Buffer.byteLength(name) > 15 || name === '.' || name === '..' || /[/:\s]/.test(name)) {
    fail(field, `"${url}": "${name}" is not a valid interface name (1-15 bytes, no /, : or spaces), e.g. tap://tap0`);
  }
  const createText = params.get('create') ?? '0';
  if (createText !== '0' && createText !== '1') fail(field, `"${url}": create=${createText} must be 0 or 1`);
  const create = createText === '1';
  let address: string | null = null;
  let prefixLength = 0;
  const addressText = params.get('address');
  if (addressText !== null) {
    const m = /^([^/]+)\/(\d+)$/.exec(addressText);
    if (!m || !net.isIPv4(m[1]) || Number(m[2]) < 1 || Number(m[2]) > 30) {
      fail(field, `"${url}": address "${addressText}" must be an IPv4 address with a prefix length 1-30, e.g. 10.77.0.254/24`);
    }
    address = m[1];
    prefixLength = Number(m[2]);
  }
  let mtuBytes: number | null = null;
  const mtuText = params.get('mtu');
  if (mtuText !== null) {
    mtuBytes = Number(mtuText);
    if (!Number.isInteger(mtuBytes) || mtuBytes < 68 || mtuBytes > 65521) fail(field, `"${url}": mtu ${mtuText} is out of range (68-65521)`);
  }
  if (!create && (address !== null || mtuBytes !== null)) {
    fail(field, `"${url}": address and mtu need create=1 (lanparty configures only a TAP it may create; set an existing one up with ip addr / ip link)`);
  }
  return { scheme: 'tap', url, name, create, address, prefixLength, mtuBytes };
}

/** The VXLAN locator (see the header). Safe defaults: nothing but what is named is contacted. */
function parseVxlanLocator(field: string, text: string, rest: string, params: URLSearchParams): PortConfig {
  const m = /^([^:/?]*)(?::(\d+))?$/.exec(rest);
  if (!m || m[1] === '') fail(field, `"${text}": the bind address must be explicit, e.g. vxlan://10.0.0.1:4789?vni=42&remote=10.0.0.2 (0.0.0.0 listens on every interface)`);
  const { host, port } = m[2] === undefined ? { host: m[1], port: 4789 } : parseHostPort(field, text, rest, true);
  if (!net.isIPv4(host)) fail(field, `"${text}": "${host}" is not an IPv4 address`);
  const vniText = params.get('vni');
  if (vniText === null) fail(field, `"${text}": missing vni; add ?vni=N (0-16777215), the same on every VTEP of the LAN`);
  const vni = Number(vniText);
  if (!/^\d+$/.test(vniText) || vni > 0xffffff) fail(field, `"${text}": vni ${vniText} is out of range (0-16777215)`);
  const remotes = params.getAll('remote').map((r) => {
    const hp = parseHostPort(field, text, r, false);
    if (isMulticast(hp.host)) fail(field, `"${text}": remote ${hp.host} is a multicast address; use group=${hp.host}`);
    return { host: hp.host, port: hp.port === 0 ? 4789 : hp.port };
  });
  const group = params.get('group');
  if (group !== null && (!net.isIPv4(group) || !isMulticast(group))) fail(field, `"${text}": group ${group} is not an IPv4 multicast address (224.0.0.0-239.255.255.255)`);
  if (remotes.length === 0 && group === null) fail(field, `"${text}": name the fabric: remote=IP (repeat for each VTEP) or group=MULTICAST-IP`);
  const dev = params.get('dev');
  if (dev !== null && group === null) fail(field, `"${text}": dev= only picks the interface for group=; drop it or add a group`);
  if (group !== null && host === '0.0.0.0' && dev === null) fail(field, `"${text}": group mode with bind address 0.0.0.0 needs dev=INTERFACE to join the group on`);
  const ttlText = params.get('ttl') ?? '1';
  const ttl = Number(ttlText);
  if (!/^\d+$/.test(ttlText) || ttl > 255) fail(field, `"${text}": ttl ${ttlText} is out of range (0-255)`);
  const accept = params.get('accept') ?? 'static';
  if (accept !== 'static' && accept !== 'any') fail(field, `"${text}": accept=${accept} is not static or any`);
  const ageText = params.get('age') ?? '300';
  const age = Number(ageText);
  if (!/^\d+$/.test(ageText) || age < 1) fail(field, `"${text}": age ${ageText} must be a whole number of seconds >= 1`);
  return { scheme: 'vxlan', url: text, host, port, vni, remotes, group, dev, ttl, acceptAny: accept === 'any', macAgeMs: age * 1000 };
}
