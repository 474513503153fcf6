/**
 * In-memory fakes for the services tests: a hand-advanced clock and timers, a FrameSink that
 * records frames, a logger that records lines, and builders for client frames.
 */
import type { FrameSink, Port } from '../../../src/switch/index.js';
import type { Logger } from '../../../src/util/logger.js';
import { startServices, defaultServicesOptions } from '../../../src/services/index.js';
import type { Services, ServicesOptions, Timers, DhcpOptions, PortLocator } from '../../../src/services/index.js';
import { BROADCAST_MAC, ETHERTYPE_ARP, ETHERTYPE_IPV4, buildFrame, dstMac, srcMac } from '../../../src/wire/ethernet.js';
import { emitIpv4, parseIpv4, IP_PROTO_UDP, IPV4_BROADCAST } from '../../../src/wire/ipv4.js';
import { emitUdp, parseUdp } from '../../../src/wire/udp.js';
import { emitDhcp, emptyDhcpRepr, parseDhcp } from '../../../src/wire/dhcp.js';
import type { DhcpRepr } from '../../../src/wire/dhcp.js';
import { emitArp, parseArp } from '../../../src/wire/arp.js';
import type { ArpRepr } from '../../../src/wire/arp.js';

export class FakeClock {
  t = 1_700_000_000_000;
  nowMs(): number { return this.t; }
}

export class FakeTimers implements Timers {
  private pending: Array<{ at: number; fn: () => void; id: number }> = [];
  private nextId = 1;
  constructor(private readonly clock: FakeClock) {}
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.pending.push({ at: this.clock.t + ms, fn, id });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending = this.pending.filter((p) => p.id !== handle);
  }
  get count(): number { return this.pending.length; }
  /** Moves the clock forward, running every timer that falls due, in order. */
  advance(ms: number): void {
    const end = this.clock.t + ms;
    for (;;) {
      this.pending.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.pending[0];
      if (next === undefined || next.at > end) break;
      this.pending.shift();
      this.clock.t = next.at;
      next.fn();
    }
    this.clock.t = end;
  }
}

export class FakeSink implements FrameSink {
  frames: Buffer[] = [];
  addPort(_port: Port): void {}
  removePort(_port: Port): void {}
  setForwarding(_port: Port, _forwarding: boolean): void {}
  input(_port: Port, buf: Buffer, off: number, len: number): void {
    this.frames.push(Buffer.from(buf.subarray(off, off + len)));
  }
  take(): Buffer[] {
    const f = this.frames;
    this.frames = [];
    return f;
  }
}

export function recordingLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const make = (prefix: string): Logger => ({
    error: (m) => lines.push(`error: ${prefix}${m}`),
    info: (m) => lines.push(prefix + m),
    debug: () => {},
    child: (c) => make(`${prefix}${c}: `),
  });
  return { log: make(''), lines };
}

export const HOST_IP = 0x0a4d0001;   // 10.77.0.1
export const MAC_A = 0x525400000001;
export const MAC_B = 0x525400000002;
export const MAC_C = 0x525400000003;

export function ipv4UdpFrame(ethSrc: number, ethDst: number, srcIp: number, dstIp: number, srcPort: number, dstPort: number, payload: Buffer): Buffer {
  const ipUdp = Buffer.alloc(28 + payload.length);
  payload.copy(ipUdp, 28);
  emitIpv4({ src: srcIp, dst: dstIp, protocol: IP_PROTO_UDP, ttl: 64, ident: 0, dontFragment: false, payloadBytes: 8 + payload.length }, ipUdp, 0);
  emitUdp({ srcPort, dstPort, payloadBytes: payload.length }, ipUdp, 20, srcIp, dstIp);
  return buildFrame(ethDst, ethSrc, ETHERTYPE_IPV4, ipUdp);
}

/** A client message; `fields` overrides the Repr (messageType is required). */
export function clientMsg(mac: number, messageType: number, fields: Partial<DhcpRepr> = {}): DhcpRepr {
  const r = emptyDhcpRepr();
  r.chaddr = mac;
  r.xid = 0x1000 + messageType;
  r.messageType = messageType;
  return Object.assign(r, fields);
}

/** Wraps a client message as a client would send it: from 0.0.0.0 (or ciaddr) to broadcast. */
export function dhcpFrame(msg: DhcpRepr, opts: { srcIp?: number; dstIp?: number; ethDst?: number; ethSrc?: number } = {}): Buffer {
  return ipv4UdpFrame(opts.ethSrc ?? msg.chaddr, opts.ethDst ?? BROADCAST_MAC, opts.srcIp ?? msg.ciaddr, opts.dstIp ?? IPV4_BROADCAST, 68, 67, emitDhcp(msg));
}

export interface DecodedUdp { ethDst: number; ethSrc: number; ipSrc: number; ipDst: number; srcPort: number; dstPort: number; payload: Buffer }

/** Decodes an IPv4/UDP frame with the checked parsers (so checksums are verified). */
export function decodeUdp(f: Buffer): DecodedUdp {
  if (f.readUInt16BE(12) !== ETHERTYPE_IPV4) throw new Error('not IPv4');
  const ip = parseIpv4(f, 14, f.length - 14);
  const u = parseUdp(f, 14 + ip.headerBytes, ip.payloadBytes, ip.src, ip.dst);
  const p = 14 + ip.headerBytes + 8;
  return { ethDst: dstMac(f, 0), ethSrc: srcMac(f, 0), ipSrc: ip.src, ipDst: ip.dst, srcPort: u.srcPort, dstPort: u.dstPort, payload: f.subarray(p, p + u.payloadBytes) };
}

export function decodeDhcp(f: Buffer): DecodedUdp & { dhcp: DhcpRepr } {
  const u = decodeUdp(f);
  return { ...u, dhcp: parseDhcp(u.payload, 0, u.payload.length) };
}

export function arpFrame(ethSrc: number, ethDst: number, arp: ArpRepr): Buffer {
  const b = Buffer.alloc(28);
  emitArp(arp, b, 0);
  return buildFrame(ethDst, ethSrc, ETHERTYPE_ARP, b);
}

export function decodeArp(f: Buffer): ArpRepr & { ethDst: number } {
  if (f.readUInt16BE(12) !== ETHERTYPE_ARP) throw new Error('not ARP');
  return { ...parseArp(f, 14, f.length - 14), ethDst: dstMac(f, 0) };
}

export interface Rig {
  services: Services;
  sink: FakeSink;
  clock: FakeClock;
  timers: FakeTimers;
  lines: string[];
  /** Delivers a frame to the services port, as the switch would. */
  deliver(frame: Buffer): void;
}

export async function rig(dhcp: Partial<DhcpOptions> = {}, top: Partial<ServicesOptions> = {}, portOf?: PortLocator): Promise<Rig> {
  const base = defaultServicesOptions();
  const opts: ServicesOptions = { ...base, ...top, dhcp: top.dhcp === null ? null : { ...base.dhcp!, probeMs: 0, ...dhcp } };
  const sink = new FakeSink();
  const clock = new FakeClock();
  const timers = new FakeTimers(clock);
  const { log, lines } = recordingLogger();
  const services = await startServices(opts, sink, log, clock, timers, portOf);
  return { services, sink, clock, timers, lines, deliver: (f) => services.port.send(f, 0, f.length) };
}

/**
 * Waits (on real time: lease file writes are real I/O) until the sink holds `count` frames, and
 * takes them. Fails after `timeoutMs`.
 */
export async function takeWhenSent(r: Rig, count = 1, timeoutMs = 5000): Promise<Buffer[]> {
  const deadline = Date.now() + timeoutMs;
  while (r.sink.frames.length < count) {
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${count} frames, got ${r.sink.frames.length}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  return r.sink.take();
}
