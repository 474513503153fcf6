/**
 * The DHCP lease table and its persistence.
 *
 * One record per client key ("mac:<12 hex>" or "id:<client id hex>") and at most one record per
 * address. Records are kept after expiry so a returning client gets its old address back
 * (RFC 2131 section 4.3.1); an expired record's address may go to another client only when no
 * never-used address is left. Declined and conflicting addresses are records too, keyed
 * "hold:<address>", so they are skipped until they expire.
 *
 * Persistence: the whole table is written as JSON to a temporary file, fsynced and renamed over
 * the lease file, then the directory is fsynced, so a crash leaves either the old or the new file.
 * Writes are synchronous: the file is small (one line per lease) and they happen on lease changes,
 * not per frame. A new binding is written before its ACK is sent (RFC 2131 section 4.3.1 asks for
 * that); a renewal that only moves the expiry time is written at most once a second.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../../util/logger.js';
import { formatMac, parseMac } from '../../wire/ethernet.js';
import { formatIpv4Address, parseIpv4Address } from '../../wire/ipv4.js';
import type { LeaseState } from '../types.js';

export interface Lease {
  key: string;
  mac: number;
  /** Client identifier (option 61) as lowercase hex, or null. */
  clientId: string | null;
  ip: number;
  hostname: string | null;
  state: LeaseState;
  expiresAtMs: number;
  /** When the address was last bound; DNS answers for a shared hostname with the newest. */
  boundAtMs: number;
}

const FILE_VERSION = 1;
const LEASE_STATES: readonly LeaseState[] = ['offered', 'bound', 'released', 'declined', 'conflict'];

export class LeaseStore {
  private readonly byKey = new Map<string, Lease>();
  private readonly byIp = new Map<number, Lease>();

  constructor(private readonly file: string | null, private readonly log: Logger) {}

  get(key: string): Lease | undefined { return this.byKey.get(key); }
  getByIp(ip: number): Lease | undefined { return this.byIp.get(ip); }
  all(): IterableIterator<Lease> { return this.byKey.values(); }
  get size(): number { return this.byKey.size; }

  /** Adds or replaces the record for `lease.key`, evicting any other record on the same address. */
  put(lease: Lease): void {
    const old = this.byKey.get(lease.key);
    if (old !== undefined && this.byIp.get(old.ip) === old) this.byIp.delete(old.ip);
    const other = this.byIp.get(lease.ip);
    if (other !== undefined && other !== lease) this.byKey.delete(other.key);
    this.byKey.set(lease.key, lease);
    this.byIp.set(lease.ip, lease);
  }

  remove(lease: Lease): void {
    if (this.byKey.get(lease.key) === lease) this.byKey.delete(lease.key);
    if (this.byIp.get(lease.ip) === lease) this.byIp.delete(lease.ip);
  }

  /**
   * Reads the lease file, if any. `keyFor` re-derives each record's key, so a change of `keyBy`
   * between runs is followed. A record whose key is taken keeps its address as a hold until it
   * expires, so the address is never given to another MAC early. A corrupt file is renamed aside
   * and logged, and the server starts empty (ARP probes still protect addresses in use).
   */
  load(keyFor: (mac: number, clientId: string | null) => string): void {
    if (this.file === null) return;
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    let records: unknown[];
    try {
      const doc = JSON.parse(text) as { version?: unknown; leases?: unknown };
      if (doc.version !== FILE_VERSION || !Array.isArray(doc.leases)) throw new Error(`expected {"version": ${FILE_VERSION}, "leases": [...]}`);
      records = doc.leases;
    } catch (err) {
      const aside = `${this.file}.corrupt-${Date.now()}`;
      renameSync(this.file, aside);
      this.log.error(`lease file ${this.file} is not valid (${(err as Error).message}); moved it to ${aside} and starting with no leases`);
      return;
    }
    let skipped = 0;
    for (const rec of records) {
      try {
        const r = rec as Record<string, unknown>;
        const mac = parseMac(String(r.mac));
        const ip = parseIpv4Address(String(r.ip));
        const clientId = typeof r.clientId === 'string' && /^[0-9a-f]+$/.test(r.clientId) ? r.clientId : null;
        const state = r.state as LeaseState;
        if (!LEASE_STATES.includes(state) || state === 'offered') throw new Error('state');
        const expiresAtMs = Number(r.expiresAtMs);
        if (!Number.isFinite(expiresAtMs)) throw new Error('expiresAtMs');
        const hostname = typeof r.hostname === 'string' && r.hostname.length <= 63 ? r.hostname : null;
        let key = state === 'declined' || state === 'conflict' ? `hold:${formatIpv4Address(ip)}` : keyFor(mac, clientId);
        if (this.byIp.has(ip)) throw new Error('duplicate address');
        const taken = this.byKey.get(key);
        if (taken !== undefined) {
          // Keep the record that expires later under the key; the other holds its address.
          if (taken.expiresAtMs < expiresAtMs) {
            this.byKey.delete(key);
            taken.key = `hold:${formatIpv4Address(taken.ip)}`;
            this.byKey.set(taken.key, taken);
          } else {
            key = `hold:${formatIpv4Address(ip)}`;
          }
        }
        const boundAtMs = Number.isFinite(Number(r.boundAtMs)) ? Number(r.boundAtMs) : 0;
        this.put({ key, mac, clientId, ip, hostname, state, expiresAtMs, boundAtMs });
      } catch {
        skipped++;
      }
    }
    if (skipped > 0) this.log.error(`lease file ${this.file}: skipped ${skipped} invalid or duplicate records`);
  }

  /** Writes the table atomically (temp file, fsync, rename, directory fsync). Offers are not saved. */
  save(): void {
    if (this.file === null) return;
    const leases = [];
    for (const l of this.byKey.values()) {
      if (l.state === 'offered') continue;
      leases.push({
        mac: formatMac(l.mac), ip: formatIpv4Address(l.ip), clientId: l.clientId, hostname: l.hostname,
        state: l.state, expiresAtMs: l.expiresAtMs, boundAtMs: l.boundAtMs,
      });
    }
    const data = JSON.stringify({ version: FILE_VERSION, leases }, null, 1) + '\n';
    const tmp = `${this.file}.tmp-${process.pid}`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.file);
    try {
      const dirFd = openSync(dirname(this.file), 'r');
      try { fsyncSync(dirFd); } finally { closeSync(dirFd); }
    } catch {
      // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
    }
  }
}
