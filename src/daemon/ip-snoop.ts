/**
 * Learns which IPv4 addresses each MAC uses, from ARP sender fields and IPv4 source addresses
 * (RFC 826; RFC 791), for `status` and for `doctor` (one IPv4 address claimed by two MACs).
 * A switch tap: per frame it reads a few bytes and does one Map lookup; it allocates only when a
 * MAC shows a new address. Bounded: `maxMacs` MACs, 4 addresses each (newest kept).
 */
import type { Port } from '../switch/port.js';

const MAX_IPS_PER_MAC = 4;

export interface IpConflict { ip: string; macs: number[]; lastSeenMs: number }

export class IpSnoop {
  private readonly byMac = new Map<number, number[]>();
  private readonly ownerOfIp = new Map<number, number>();
  readonly conflicts = new Map<number, IpConflict>();
  private nowMs = 0;
  readonly tap: (port: Port, buf: Buffer, off: number, len: number) => void;

  constructor(private readonly maxMacs = 8192) {
    this.tap = this.onFrame.bind(this);
  }

  setNow(nowMs: number): void { this.nowMs = nowMs; }

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
    let ips = this.byMac.get(mac);
    if (ips !== undefined && ips[ips.length - 1] === ip) return;
    this.record(mac, ip, ips);
  }

  private record(mac: number, ip: number, ips: number[] | undefined): void {
    if (ips === undefined) {
      if (this.byMac.size >= this.maxMacs) return;
      ips = [];
      this.byMac.set(mac, ips);
    }
    const i = ips.indexOf(ip);
    if (i >= 0) ips.splice(i, 1);
    ips.push(ip);
    if (ips.length > MAX_IPS_PER_MAC) ips.shift();
    const owner = this.ownerOfIp.get(ip);
    if (owner !== undefined && owner !== mac && (type4(ip))) {
      const c = this.conflicts.get(ip) ?? { ip: ipText(ip), macs: [owner], lastSeenMs: this.nowMs };
      if (!c.macs.includes(mac)) c.macs.push(mac);
      c.lastSeenMs = this.nowMs;
      this.conflicts.set(ip, c);
    }
    if (this.ownerOfIp.size < this.maxMacs * 2 || owner !== undefined) this.ownerOfIp.set(ip, mac);
  }

  ipsOf(mac: number): string[] {
    return (this.byMac.get(mac) ?? []).map(ipText);
  }

  forget(mac: number): void {
    this.byMac.delete(mac);
  }
}

function type4(ip: number): boolean {
  return ip !== 0xffffffff;
}

export function ipText(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
}
