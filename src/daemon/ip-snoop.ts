/**
 * Learns which IPv4 addresses each MAC uses, from ARP sender fields and IPv4 source addresses
 * (RFC 826; RFC 791), for `status` and for `doctor` (one IPv4 address claimed by two MACs).
 * A switch tap: per frame it reads a few bytes and does one Map lookup; it allocates only when a
 * MAC shows a new address.
 * Bounded, like the MAC table it annotates: at most `maxMacs` MACs with 4 addresses each (newest
 * kept); a MAC not heard for `ageMs` is forgotten by `tick`, and a new MAC when full evicts the
 * least recently heard one. `byMac` is kept in order of recency (a MAC moves to its end on its
 * first frame in a tick), so both cost only what they remove. An address's owner is forgotten
 * with the MAC. Conflicts (an address claimed by a second MAC) keep at most
 * MAX_MACS_PER_CONFLICT MACs each, at most MAX_CONFLICTS of them (the least recently seen goes),
 * and go CONFLICT_KEEP_MS after they were last seen (doctor looks back 10 minutes).
 */
import type { Port } from '../switch/index.js';

const MAX_IPS_PER_MAC = 4;
export const MAX_CONFLICTS = 1024;
export const MAX_MACS_PER_CONFLICT = 8;
export const CONFLICT_KEEP_MS = 10 * 60_000;

export interface IpConflict { ip: string; macs: number[]; lastSeenMs: number }

class MacIps {
  /** Newest last. */
  readonly ips: number[] = [];
  constructor(public lastSeenMs: number) {}
}

export class IpSnoopCounters {
  /** MACs forgotten after `ageMs` without a frame. */
  expired = 0;
  /** MACs forgotten to make room for a new one (the table was full). */
  evicted = 0;
  /** Conflicts forgotten: not seen for CONFLICT_KEEP_MS, or to make room (MAX_CONFLICTS). */
  conflictsDropped = 0;
}

export class IpSnoop {
  private readonly byMac = new Map<number, MacIps>();
  private readonly ownerOfIp = new Map<number, number>();
  /** In order of last sighting, oldest first. */
  readonly conflicts = new Map<number, IpConflict>();
  readonly counters = new IpSnoopCounters();
  private nowMs = 0;
  readonly tap: (port: Port, buf: Buffer, off: number, len: number) => void;

  constructor(private readonly maxMacs = 8192, private readonly ageMs = 300_000) {
    this.tap = this.onFrame.bind(this);
  }

  /** MACs known now. */
  get size(): number { return this.byMac.size; }

  /** Sets the time and forgets MACs not heard for `ageMs` and conflicts not seen for CONFLICT_KEEP_MS. */
  tick(nowMs: number): void {
    this.nowMs = nowMs;
    for (const [mac, e] of this.byMac) {
      if (nowMs - e.lastSeenMs < this.ageMs) break;
      this.forget(mac);
      this.counters.expired++;
    }
    for (const [ip, c] of this.conflicts) {
      if (nowMs - c.lastSeenMs <= CONFLICT_KEEP_MS) break;
      this.conflicts.delete(ip);
      this.counters.conflictsDropped++;
    }
  }

  private onFrame(_port: Port, buf: Buffer, off: number, len: number): void {
    if (len < 34 || (buf[off + 6] & 1) === 1) return;
    const type = buf.readUInt16BE(off + 12);
    let ip: number;
    if (type === 0x0806) {
      if (len < 42) return;
      ip = buf.readUInt32BE(off + 28);             // ARP sender protocol address
    } else if (type === 0x0800) {
      ip = buf.readUInt32BE(off + 26);             // IPv4 source
    } else {
      return;
    }
    if (ip === 0 || ip >= 0xe0000000) return;       // 0.0.0.0 (DHCP, ARP probe), multicast
    const mac = buf.readUInt32BE(off + 6) * 0x10000 + buf.readUInt16BE(off + 10);
    const e = this.byMac.get(mac);
    if (e !== undefined) {
      if (e.lastSeenMs !== this.nowMs) {
        // First frame this tick: to the end of the recency order.
        e.lastSeenMs = this.nowMs;
        this.byMac.delete(mac);
        this.byMac.set(mac, e);
      }
      if (e.ips[e.ips.length - 1] === ip) return;
    }
    this.record(mac, ip, e);
  }

  private record(mac: number, ip: number, e: MacIps | undefined): void {
    if (e === undefined) {
      if (this.byMac.size >= this.maxMacs) {
        // Full: the least recently heard MAC goes.
        for (const oldest of this.byMac.keys()) {
          this.forget(oldest);
          this.counters.evicted++;
          break;
        }
      }
      e = new MacIps(this.nowMs);
      this.byMac.set(mac, e);
    }
    const ips = e.ips;
    const i = ips.indexOf(ip);
    if (i >= 0) ips.splice(i, 1);
    ips.push(ip);
    if (ips.length > MAX_IPS_PER_MAC) this.release(mac, ips.shift()!);
    const owner = this.ownerOfIp.get(ip);
    if (owner !== undefined && owner !== mac && ip !== 0xffffffff) this.conflict(ip, owner, mac);
    this.ownerOfIp.set(ip, mac);
  }

  private conflict(ip: number, owner: number, mac: number): void {
    let c = this.conflicts.get(ip);
    if (c === undefined) {
      if (this.conflicts.size >= MAX_CONFLICTS) {
        for (const oldest of this.conflicts.keys()) {
          this.conflicts.delete(oldest);
          this.counters.conflictsDropped++;
          break;
        }
      }
      c = { ip: ipText(ip), macs: [owner], lastSeenMs: this.nowMs };
    } else {
      this.conflicts.delete(ip); // re-inserted below: the newest sighting goes last
    }
    if (!c.macs.includes(mac)) {
      c.macs.push(mac);
      if (c.macs.length > MAX_MACS_PER_CONFLICT) c.macs.shift();
    }
    c.lastSeenMs = this.nowMs;
    this.conflicts.set(ip, c);
  }

  /** `mac` no longer uses `ip`: it stops being the address's owner. */
  private release(mac: number, ip: number): void {
    if (this.ownerOfIp.get(ip) === mac) this.ownerOfIp.delete(ip);
  }

  ipsOf(mac: number): string[] {
    return (this.byMac.get(mac)?.ips ?? []).map(ipText);
  }

  forget(mac: number): void {
    const e = this.byMac.get(mac);
    if (e === undefined) return;
    this.byMac.delete(mac);
    for (const ip of e.ips) this.release(mac, ip);
  }
}

export function ipText(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
}
