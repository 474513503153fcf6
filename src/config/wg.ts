/**
 * The `[wg]` section: encrypted peer links (transports/wg). Keys are base64 as `wg genkey` and
 * `lanparty genkey` print them. Example:
 *
 *   [wg]
 *   private_key_file = "/etc/lanparty/wg.key"   # or private_key = "..."
 *   listen = "0.0.0.0:51820"
 *   address = "10.99.0.1"          # our tunnel address
 *   vni = 42                       # VXLAN VNI inside the tunnel (default 42)
 *   mtu = 1420                     # tunnel MTU; bigger inner packets are fragmented
 *
 *   [[wg.peer]]
 *   public_key = "..."
 *   preshared_key = "..."          # optional
 *   endpoint = "192.0.2.2:51820"   # optional: without it the peer is learned when it connects
 *   address = "10.99.0.2"          # its tunnel address
 *   persistent_keepalive = 25      # seconds, optional
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { LanpartyError } from '../util/index.js';
import type { WgConfig, WgPeerConfig } from './types.js';

type Table = Record<string, unknown>;

function fail(field: string, msg: string): never {
  throw new LanpartyError('LP_ERR_CONFIG', `${field}: ${msg}`);
}

function tableOf(v: unknown, field: string): Table {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(field, 'expected a table');
  return v as Table;
}

function checkKeys(t: Table, where: string, allowed: string[]): void {
  for (const k of Object.keys(t)) if (!allowed.includes(k)) fail(`${where}.${k}`, `unknown key (expected one of ${allowed.join(', ')})`);
}

function str(v: unknown, field: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') fail(field, `expected a string, got ${JSON.stringify(v)}`);
  return v;
}

function int(v: unknown, field: string, min: number, max: number, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v)) fail(field, `expected a whole number, got ${JSON.stringify(v)}`);
  if (v < min || v > max) fail(field, `${v} is out of range (${min}-${max})`);
  return v;
}

/** Parses a base64 WireGuard key; the error names the field. */
export function parseWgKey(text: string, field: string): Buffer {
  const t = text.trim();
  if (!/^[A-Za-z0-9+/]{43}=$/.test(t)) fail(field, 'not a WireGuard key (expected 44 base64 characters, as printed by lanparty genkey or wg genkey)');
  return Buffer.from(t, 'base64');
}

function hostPort(text: string, field: string, defaultPort?: number): { host: string; port: number } {
  const m = /^(\d+\.\d+\.\d+\.\d+)(?::(\d+))?$/.exec(text);
  if (!m || !net.isIPv4(m[1])) fail(field, `"${text}" is not IPV4:PORT`);
  if (m[2] === undefined && defaultPort === undefined) fail(field, `"${text}" has no port; write ${m[1]}:51820`);
  const port = m[2] === undefined ? defaultPort! : Number(m[2]);
  if (port < 1 || port > 65535) fail(field, `port ${port} is out of range (1-65535)`);
  return { host: m[1], port };
}

function ipv4(v: unknown, field: string): string {
  const s = str(v, field);
  if (s === undefined) fail(field, 'missing; give the IPv4 tunnel address, e.g. 10.99.0.1');
  if (!net.isIPv4(s)) fail(field, `"${s}" is not an IPv4 address`);
  return s;
}

export function parseWgSection(v: unknown): WgConfig {
  const t = tableOf(v, 'wg');
  checkKeys(t, 'wg', ['private_key', 'private_key_file', 'listen', 'address', 'vni', 'mtu', 'peer']);
  let keyText = str(t.private_key, 'wg.private_key');
  const keyFile = str(t.private_key_file, 'wg.private_key_file');
  if (keyText !== undefined && keyFile !== undefined) fail('wg.private_key', 'give private_key or private_key_file, not both');
  if (keyFile !== undefined) {
    try {
      keyText = fs.readFileSync(keyFile, 'utf8');
    } catch (err) {
      throw new LanpartyError('LP_ERR_CONFIG', `wg.private_key_file: cannot read ${keyFile} (${(err as NodeJS.ErrnoException).code}); create it with lanparty genkey > ${keyFile}`, { cause: err });
    }
  }
  if (keyText === undefined) fail('wg', 'needs private_key or private_key_file (make one with lanparty genkey)');
  const privateKey = parseWgKey(keyText, keyFile !== undefined ? 'wg.private_key_file' : 'wg.private_key');
  const listenText = str(t.listen, 'wg.listen') ?? '127.0.0.1:51820';
  const listen = hostPort(listenText, 'wg.listen', 51820);
  const address = ipv4(t.address, 'wg.address');
  const vni = int(t.vni, 'wg.vni', 0, 0xffffff, 42);
  const mtuBytes = int(t.mtu, 'wg.mtu', 576, 65535, 1420);
  const peersRaw = t.peer ?? [];
  if (!Array.isArray(peersRaw)) fail('wg.peer', 'expected an array of tables ([[wg.peer]] sections)');
  const seen = new Set<string>();
  const peers: WgPeerConfig[] = peersRaw.map((raw, i) => {
    const f = `wg.peer[${i}]`;
    const p = tableOf(raw, f);
    checkKeys(p, f, ['public_key', 'preshared_key', 'endpoint', 'address', 'persistent_keepalive']);
    const pk = str(p.public_key, `${f}.public_key`);
    if (pk === undefined) fail(`${f}.public_key`, 'missing; every peer is its public key (lanparty pubkey < its private key)');
    const publicKey = parseWgKey(pk, `${f}.public_key`);
    if (seen.has(pk.trim())) fail(`${f}.public_key`, 'the same peer is listed twice');
    seen.add(pk.trim());
    const psk = str(p.preshared_key, `${f}.preshared_key`);
    const ep = str(p.endpoint, `${f}.endpoint`);
    const peerAddress = ipv4(p.address, `${f}.address`);
    if (peerAddress === address) fail(`${f}.address`, `${peerAddress} is our own tunnel address (wg.address); give the peer its own`);
    return {
      publicKey,
      presharedKey: psk === undefined ? null : parseWgKey(psk, `${f}.preshared_key`),
      endpoint: ep === undefined ? null : hostPort(ep, `${f}.endpoint`),
      address: peerAddress,
      persistentKeepaliveS: int(p.persistent_keepalive, `${f}.persistent_keepalive`, 0, 65535, 0),
    };
  });
  return { scheme: 'wg', url: `wg://${listen.host}:${listen.port}`, privateKey, listen, address, vni, mtuBytes, peers };
}
