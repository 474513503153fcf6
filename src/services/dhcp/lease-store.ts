/**
 * The DHCP lease table and its persistence.
 *
 * One record per client key ("mac:<12 hex>" or "id:<client id hex>") and at most one record per
 * address, so the table (and the file) never holds more records than the subnet has addresses.
 * Records are kept after expiry so a returning client gets its old address back
 * (RFC 2131 section 4.3.1); an expired record's address may go to another client only when no
 * never-used address is left. Declined and conflicting addresses are records too, keyed
 * "hold:<address>", so they are skipped until they expire.
 *
 * Persistence: the whole table is written as JSON to a temporary file, fsynced and renamed over
 * the lease file, then the directory is fsynced, so a crash leaves either the old or the new file.
 * Writes run off the event loop (fs promises) and are coalesced: at most one starts per
 * LEASE_WRITE_INTERVAL_MS (longer for a big file), never two at once, and `flush` writes what is
 * pending at shutdown.
 * `commit(done)` calls `done` once a write holding the change is on disk: the server sends a new
 * binding's ACK only then (RFC 2131 section 4.3.1: record the binding before the ACK), so a burst
 * of bindings shares one fsync. Temporary files left by a killed process are removed by `load`.
 */
import { closeSync, fstatSync, openSync, readFileSync, readdirSync, renameSync, unlinkSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { LanpartyError, type Logger, RateLimitedLog } from '../../util/index.js';
import { DHCP_MAX_CLIENT_ID_BYTES, DHCP_MAX_HOSTNAME_BYTES, formatMac, parseMac, formatIpv4Address, parseIpv4Address } from '../../wire/index.js';
import { type Clock, type LeaseFileCounters, type LeaseState, type Timers, realTimers, systemClock } from '../types.js';

/**
 * Least time between the starts of two lease file writes. A burst of new bindings waits at most
 * this long (plus one write) for its ACKs: well inside a client's first retransmission (4 s in
 * RFC 2131 section 4.1, 2-3 s in dhclient and udhcpc).
 */
export const LEASE_WRITE_INTERVAL_MS = 250;
/**
 * The gap grows by this much per MB of the last write: the JSON is built on the event loop
 * (about 8 ms per MB), so a big table is written less often, at most ~10% of the loop's time.
 */
export const LEASE_WRITE_GAP_MS_PER_MB = 100;
/**
 * Largest lease file read or written. A record is at most ~800 bytes (a 255-byte client id as
 * hex), so this holds a /16's worth; a larger file is not lanparty's and is moved aside.
 */
export const LEASE_FILE_MAX_BYTES = 64 * 1024 * 1024;

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
  /** Id of the switch port the client was last heard on (0: unknown, e.g. loaded from the file). */
  portId: number;
}

const FILE_VERSION = 1;
const LEASE_STATES: readonly LeaseState[] = ['offered', 'bound', 'released', 'declined', 'conflict'];
const HEX_RE = /^(?:[0-9a-f]{2})+$/;
const PRINTABLE_RE = /^[\x20-\x7e]+$/;

export class LeaseStore {
  readonly fileCounters: LeaseFileCounters = { writes: 0, writeErrors: 0, coalesced: 0, oversize: 0 };
  private readonly byKey = new Map<string, Lease>();
  private readonly byIp = new Map<number, Lease>();
  private readonly errorLog: RateLimitedLog;
  /** The table changed since the last write started. */
  private dirty = false;
  private writing: Promise<void> | null = null;
  private timer: unknown = null;
  private lastWriteStartMs = -Infinity;
  private lastWriteBytes = 0;
  /** Set by `flush`: a write that fails then is not retried by a timer. */
  private flushed = false;
  /** Called with true once the next write to start is on disk (false if it fails). */
  private waiters: Array<(ok: boolean) => void> = [];

  constructor(
    private readonly file: string | null, private readonly log: Logger,
    private readonly clock: Clock = systemClock, private readonly timers: Timers = realTimers,
  ) {
    this.errorLog = new RateLimitedLog((m) => log.error(m), 5, 60_000);
  }

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
   * Reads the lease file, if any, after removing temporary files a killed lanparty left beside it.
   * `keyFor` re-derives each record's key, so a change of `keyBy` between runs is followed. A
   * record whose key is taken keeps its address as a hold until it expires, so the address is
   * never given to another MAC early. A file that is not a lease file (bad JSON, wrong shape, over
   * LEASE_FILE_MAX_BYTES) is renamed aside and logged, and the server starts empty (ARP probes
   * still protect addresses in use). A file that cannot be read throws LP_ERR_PERMISSION or
   * LP_ERR_CONFIG naming it.
   */
  load(keyFor: (mac: number, clientId: string | null) => string): void {
    if (this.file === null) return;
    this.removeStaleTemps();
    let text: string | null = null;
    let size = 0;
    try {
      const fd = openSync(this.file, 'r');
      try {
        size = fstatSync(fd).size;
        if (size <= LEASE_FILE_MAX_BYTES) text = readFileSync(fd, 'utf8');
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT') return;
      throw fileError(this.file, 'cannot read it', e);
    }
    if (text === null) {
      this.moveAside(`it is ${size} bytes, over the ${LEASE_FILE_MAX_BYTES}-byte limit for a lease file`);
      return;
    }
    let records: unknown[];
    try {
      const doc = JSON.parse(text) as { version?: unknown; leases?: unknown } | null;
      if (doc === null || typeof doc !== 'object' || doc.version !== FILE_VERSION || !Array.isArray(doc.leases)) {
        throw new Error(`expected {"version": ${FILE_VERSION}, "leases": [...]}`);
      }
      records = doc.leases;
    } catch (err) {
      this.moveAside((err as Error).message);
      return;
    }
    let skipped = 0;
    for (const rec of records) {
      try {
        if (rec === null || typeof rec !== 'object') throw new Error('record');
        const r = rec as Record<string, unknown>;
        if (typeof r.mac !== 'string' || typeof r.ip !== 'string') throw new Error('mac/ip');
        const mac = parseMac(r.mac);
        const ip = parseIpv4Address(r.ip);
        const clientId = typeof r.clientId === 'string' && r.clientId.length <= 2 * DHCP_MAX_CLIENT_ID_BYTES && HEX_RE.test(r.clientId) ? r.clientId : null;
        const state = r.state as LeaseState;
        if (!LEASE_STATES.includes(state) || state === 'offered') throw new Error('state');
        const expiresAtMs = typeof r.expiresAtMs === 'number' ? r.expiresAtMs : NaN;
        if (!Number.isFinite(expiresAtMs)) throw new Error('expiresAtMs');
        const hostname = typeof r.hostname === 'string' && r.hostname.length <= DHCP_MAX_HOSTNAME_BYTES && PRINTABLE_RE.test(r.hostname) ? r.hostname : null;
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
        const boundAtMs = typeof r.boundAtMs === 'number' && Number.isFinite(r.boundAtMs) ? r.boundAtMs : 0;
        this.put({ key, mac, clientId, ip, hostname, state, expiresAtMs, boundAtMs, portId: 0 });
      } catch {
        skipped++;
      }
    }
    if (skipped > 0) this.log.error(`lease file ${this.file}: skipped ${skipped} invalid or duplicate records`);
  }

  private moveAside(why: string): void {
    const file = this.file!;
    const aside = `${file}.corrupt-${Date.now()}`;
    try {
      renameSync(file, aside);
    } catch (err) {
      throw fileError(file, `is not a valid lease file (${why}) and cannot be moved aside`, err as NodeJS.ErrnoException);
    }
    this.log.error(`lease file ${file} is not valid (${why}); moved it to ${aside} and starting with no leases`);
  }

  /** Removes "<file>.tmp-<pid>" left by a lanparty that was killed mid-write (its pid is gone). */
  private removeStaleTemps(): void {
    const file = this.file!;
    const prefix = basename(file) + '.tmp-';
    let names: string[];
    try {
      names = readdirSync(dirname(file));
    } catch {
      return;   // no directory yet: nothing left over; the first write reports a real problem
    }
    let removed = 0;
    for (const n of names) {
      if (!n.startsWith(prefix)) continue;
      const pidText = n.slice(prefix.length);
      if (!/^[1-9][0-9]{0,9}$/.test(pidText)) continue;
      const pid = Number(pidText);
      if (pid !== process.pid && processAlive(pid)) continue;   // another lanparty on this file is writing it
      try {
        unlinkSync(join(dirname(file), n));
        removed++;
      } catch {
        // Gone already, or not ours to remove: the next write reports a real problem.
      }
    }
    if (removed > 0) this.log.info(`lease file ${file}: removed ${removed} temporary file${removed === 1 ? '' : 's'} left by an earlier run that was killed mid-write`);
  }

  /** Marks the table changed: it is written within LEASE_WRITE_INTERVAL_MS. Offers are not saved. */
  changed(): void {
    if (this.file === null) return;
    if (this.dirty || this.timer !== null || this.writing !== null) this.fileCounters.coalesced++;
    this.dirty = true;
    this.schedule();
  }

  /**
   * As `changed`, then calls `done(true)` once a write holding the change is on disk, or
   * `done(false)` if that write fails. Without a lease file, `done(true)` runs at once.
   */
  commit(done: (ok: boolean) => void): void {
    if (this.file === null) { done(true); return; }
    this.waiters.push(done);
    this.changed();
  }

  /** Writes pending changes now (at shutdown) and resolves when no write is running. */
  async flush(): Promise<void> {
    this.flushed = true;
    if (this.timer !== null) {
      this.timers.clearTimeout(this.timer);
      this.timer = null;
    }
    while (this.writing !== null) await this.writing;
    if (this.dirty) this.startWrite();
    while (this.writing !== null) await this.writing;
  }

  /** Starts a write now if none is running and the interval has passed, else plans one. */
  private schedule(): void {
    if (this.writing !== null || this.timer !== null || this.flushed) return;   // the running write's end reschedules
    const gapMs = LEASE_WRITE_INTERVAL_MS + Math.floor(this.lastWriteBytes * LEASE_WRITE_GAP_MS_PER_MB / (1024 * 1024));
    const waitMs = this.lastWriteStartMs + gapMs - this.clock.nowMs();
    if (waitMs <= 0) {
      this.startWrite();
      return;
    }
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      if (this.writing === null && this.dirty) this.startWrite();
    }, waitMs);
  }

  private startWrite(): void {
    const file = this.file!;
    this.dirty = false;
    this.lastWriteStartMs = this.clock.nowMs();
    const waiters = this.waiters;
    this.waiters = [];
    const data = this.serialize();
    this.lastWriteBytes = data.length;
    if (data.length > LEASE_FILE_MAX_BYTES) {
      this.fileCounters.oversize++;
      this.errorLog.write(this.clock.nowMs(), `lease file ${file}: the table is ${data.length} bytes, over the ${LEASE_FILE_MAX_BYTES}-byte limit; not written (use a smaller subnet or pool)`);
      for (const w of waiters) w(false);
      return;
    }
    // Callbacks run one by one, so one that throws cannot keep the others or the next write
    // from running, and nothing here can reject unhandled.
    const settle = (ok: boolean): void => {
      for (const w of waiters) {
        try {
          w(ok);
        } catch (err) {
          this.errorLog.write(this.clock.nowMs(), `lease file ${file}: internal error after a write: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        }
      }
    };
    this.writing = writeAtomic(file, data).then(() => {
      this.fileCounters.writes++;
      this.writing = null;
      settle(true);
    }, (err: NodeJS.ErrnoException) => {
      this.fileCounters.writeErrors++;
      this.writing = null;
      this.dirty = true;   // retried with the next change or write
      this.errorLog.write(this.clock.nowMs(), `lease file ${file}: write failed (${err.code ?? err.message}); leases stay in memory and new bindings are not acknowledged until a write succeeds; check the disk and the directory's permissions`);
      settle(false);
    }).then(() => {
      if (this.dirty) this.schedule();
    }).catch((err: unknown) => {
      this.writing = null;
      this.errorLog.write(this.clock.nowMs(), `lease file ${file}: internal error planning the next write: ${String(err)}`);
    });
  }

  private serialize(): string {
    const leases = [];
    for (const l of this.byKey.values()) {
      if (l.state === 'offered') continue;
      leases.push({
        mac: formatMac(l.mac), ip: formatIpv4Address(l.ip), clientId: l.clientId, hostname: l.hostname,
        state: l.state, expiresAtMs: l.expiresAtMs, boundAtMs: l.boundAtMs,
      });
    }
    return JSON.stringify({ version: FILE_VERSION, leases }, null, 1) + '\n';
  }
}

/** temp file, fsync, rename, directory fsync; the temp file is removed if a step fails. */
async function writeAtomic(file: string, data: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  try {
    const dir = await open(dirname(file), 'r');
    try { await dir.sync(); } finally { await dir.close(); }
  } catch {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function fileError(file: string, what: string, err: NodeJS.ErrnoException): LanpartyError {
  const code = err.code === 'EACCES' || err.code === 'EPERM' ? 'LP_ERR_PERMISSION' : 'LP_ERR_CONFIG';
  return new LanpartyError(code, `lease file ${file}: ${what} (${err.code ?? err.message}); fix its permissions, or set [dhcp] lease_file to a file lanparty can write`, { cause: err });
}
