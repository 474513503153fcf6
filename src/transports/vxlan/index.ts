/**
 * VXLAN (RFC 7348; read §4-§5 first): the whole fabric of one VNI is ONE switch port, like the
 * multicast group. The switch never sends a frame back to its ingress port, so a frame heard from
 * any VTEP is never sent to the fabric again (split horizon). Inside the port a VtepTable maps
 * remote MACs to the VTEP they sit behind (learned from the outer source address), so known
 * unicast goes to one VTEP and broadcast/unknown unicast go to every static VTEP (head-end
 * replication) and/or the multicast group.
 *
 * VXLAN carries no encryption and no authentication: anyone who can send UDP to the port can
 * inject frames into the LAN. Run it on trusted networks, or over an encrypted underlay.
 *
 * Receive stages, per underlay batch:
 *   1. Source id → VTEP (array cache per id): own packets, unknown sources (static mode) dropped.
 *   2. Header check (flags 0x08 exactly, reserved byte 0, our VNI); others dropped and counted.
 *   3. Learn the inner source MAC (unicast only) behind the VTEP.
 *   4. sink.input(port, buf, 8, len - 8): the switch checks the frame as for any port.
 * Send stages (`VxlanPort.send`): oversize check → header + frame into the scratch buffer →
 * destination MAC: known unicast → its VTEP; group or unknown → every static VTEP and the group.
 */
import { LanpartyError } from '../../util/index.js';
import { PortCounters, type Port } from '../../switch/index.js';
import type { Transport, TransportContext, TransportStatus } from '../transport.js';
import type { RxBatch } from '../../io/index.js';
import { VXLAN_HEADER_BYTES, VXLAN_OK, VXLAN_SHORT, VXLAN_BAD_FLAGS, VXLAN_BAD_RESERVED, VXLAN_OTHER_VNI, vxlanCheck, vxlanVni, writeVxlanHeader, formatMac } from '../../wire/index.js';
import { VtepTable, type Vtep, type VtepTableOptions } from './vtep-table.js';
import { UdpUnderlay, type UdpUnderlayConfig, type VxlanUnderlay } from './underlay.js';
import { networkInterfaces } from 'node:os';

export { VtepTable, Vtep, DEFAULT_VTEP_TABLE_OPTIONS, type VtepTableOptions } from './vtep-table.js';
export { UdpUnderlay, type VxlanUnderlay, type UdpUnderlayConfig } from './underlay.js';

/** Largest inner frame: the largest UDP payload over IPv4 minus the VXLAN header. */
export const VXLAN_MAX_INNER_BYTES = 65507 - VXLAN_HEADER_BYTES;

export interface VxlanConfig {
  vni: number;
  /** Static remote VTEPs: IPv4 address and the UDP port to send to. */
  remotes: Array<{ host: string; port: number }>;
  /** Multicast group for flooding (and receiving floods), or null. */
  group: { address: string; port: number } | null;
  /** Accept packets from VTEPs not listed in `remotes` (always on in group mode). */
  acceptAny: boolean;
  table: Partial<VtepTableOptions>;
}

/** Per-transport receive counters (outer packets); frame-level drops are on the port. */
export class VxlanCounters {
  rxPackets = 0;
  /** Shorter than the VXLAN header. */
  rxShort = 0;
  /** Flags word not 0x08000000 (I flag missing, or extension/reserved bits set). */
  rxBadFlags = 0;
  /** Reserved byte after the VNI not zero. */
  rxBadReserved = 0;
  /** Valid header, other VNI. */
  rxOtherVni = 0;
  /** The VNI of the last such packet, for status (-1: none yet). */
  lastOtherVni = -1;
  /**
   * From a source that is not a configured remote (static mode without accept=any). Status adds
   * those the socket dropped before they got here (UdpUnderlay acceptOnly), to this and rxPackets.
   */
  rxUnknownVtep = 0;
  /** Our own packets (multicast loopback). */
  rxOwn = 0;
  /** Copies sent (one frame flooded to three VTEPs counts three). */
  txPackets = 0;
  /** Floods (broadcast, multicast, unknown unicast) and known-unicast sends. */
  txFloods = 0;
  txUnicasts = 0;
}

export interface VxlanVtepStatus {
  address: string;
  static: boolean;
  /** Seconds since the last packet from it (null: never heard from). */
  lastRxS: number | null;
  rxPackets: number;
  txPackets: number;
  macs: Array<{ mac: string; ageS: number }>;
}

export interface VxlanStatus {
  vni: number;
  underlay: string;
  group: string | null;
  acceptAny: boolean;
  counters: Record<string, number>;
  table: Record<string, number>;
  vteps: VxlanVtepStatus[];
}

export type VxlanTransportStatus = TransportStatus & { vxlan: VxlanStatus };

/** Source id cache values besides slot + 1. */
const SRC_UNKNOWN = 0;
const SRC_REFUSED = -1;
const SRC_OWN = -2;

export class VxlanPort implements Port {
  id = 0;
  readonly counters = new PortCounters();
  readonly kind = 'vxlan' as const;
  up = false;
  /** Underlay destination id of the group, or -1. */
  groupDest = -1;
  /**
   * Header + frame are assembled here, because BatchSocket.send takes one contiguous range.
   * TODO: one extra copy per frame (and a Buffer view in Buffer#copy); a gather send would avoid it.
   */
  private readonly scratch: Buffer;

  constructor(
    readonly name: string,
    readonly maxFrameBytes: number,
    private readonly where: string,
    private readonly vni: number,
    private readonly underlay: VxlanUnderlay,
    private readonly table: VtepTable,
    private readonly vx: VxlanCounters,
  ) {
    this.scratch = Buffer.alloc(VXLAN_HEADER_BYTES + maxFrameBytes);
    writeVxlanHeader(this.scratch, 0, vni);
  }

  endpoint(): string { return this.where; }

  send(buf: Buffer, off: number, len: number): void {
    if (!this.up) {
      this.counters.drops['port-down']++;
      return;
    }
    if (len > this.maxFrameBytes) {
      this.counters.drops.oversize++;
      return;
    }
    const scratch = this.scratch;
    buf.copy(scratch, VXLAN_HEADER_BYTES, off, off + len);
    const total = VXLAN_HEADER_BYTES + len;
    let sent = 0;
    let failed = 0;
    const target = (buf[off] & 1) === 0 ? this.table.lookup(buf.readUInt32BE(off) * 0x10000 + buf.readUInt16BE(off + 4)) : undefined;
    if (target !== undefined) {
      this.vx.txUnicasts++;
      if (this.underlay.send(target.dest, scratch, 0, total)) {
        target.txPackets++;
        target.txBytes += total;
        sent++;
      } else {
        failed++;
      }
    } else {
      // Head-end replication: one copy per static VTEP, plus one to the group.
      this.vx.txFloods++;
      const statics = this.table.statics;
      for (let i = 0; i < statics.length; i++) {
        const v = statics[i];
        if (this.underlay.send(v.dest, scratch, 0, total)) {
          v.txPackets++;
          v.txBytes += total;
          sent++;
        } else {
          failed++;
        }
      }
      if (this.groupDest >= 0) {
        if (this.underlay.send(this.groupDest, scratch, 0, total)) sent++;
        else failed++;
      }
    }
    this.vx.txPackets += sent;
    if (sent > 0) {
      this.counters.txFrames++;
      this.counters.txBytes += len;
    }
    if (failed > 0) this.counters.drops['send-error'] += failed;
  }

  close(): void {}
}

export class VxlanTransport implements Transport {
  readonly kind = 'vxlan' as const;
  readonly port: VxlanPort;
  readonly table: VtepTable;
  readonly vx = new VxlanCounters();
  private started = false;
  private nowMs = 0;
  /** srcState[sourceId]: VTEP slot + 1, or SRC_UNKNOWN / SRC_REFUSED / SRC_OWN. */
  private srcState: Int32Array = new Int32Array(64);
  private srcGeneration = 0;
  private readonly onBatchBound: (rx: RxBatch, count: number) => void;

  /** `underlay` is any VxlanUnderlay: UdpUnderlay (see openVxlan), a test fake, later an encrypted link. */
  constructor(readonly url: string, private readonly cfg: VxlanConfig, private readonly ctx: TransportContext, private readonly underlay: VxlanUnderlay) {
    this.table = new VtepTable(cfg.table);
    const maxFrameBytes = Math.min(ctx.maxFrameBytes, VXLAN_MAX_INNER_BYTES);
    this.port = new VxlanPort(`vxlan vni ${cfg.vni}`, maxFrameBytes, `vni ${cfg.vni}`, cfg.vni, underlay, this.table, this.vx);
    this.onBatchBound = this.onBatch.bind(this);
  }

  async start(): Promise<void> {
    this.underlay.onSourceEvicted((id) => {
      if (id < this.srcState.length) this.srcState[id] = SRC_UNKNOWN;
    });
    await this.underlay.start(this.onBatchBound);
    for (const r of this.cfg.remotes) this.table.addStatic(r.host, this.underlay.destination(r.host, r.port), this.nowMs);
    if (this.cfg.group) this.port.groupDest = this.underlay.destination(this.cfg.group.address, this.cfg.group.port);
    this.started = true;
    this.port.up = true;
    this.ctx.sink.addPort(this.port);
    this.ctx.log.info(`vxlan vni ${this.cfg.vni} on ${this.underlay.describe()}: ${this.cfg.remotes.length} static VTEPs${this.cfg.group ? `, group ${this.cfg.group.address}` : ''}; VXLAN is not encrypted`);
  }

  /** Resolves a source id to a VTEP slot + 1, or a SRC_* code; cached per id. */
  private resolve(id: number): number {
    if (this.srcGeneration !== this.table.generation) {
      this.srcState.fill(SRC_UNKNOWN);
      this.srcGeneration = this.table.generation;
    }
    if (id >= this.srcState.length) {
      const grown = new Int32Array(Math.max(id + 1, this.srcState.length * 2));
      grown.set(this.srcState);
      this.srcState = grown;
    }
    let s = this.srcState[id];
    if (s !== SRC_UNKNOWN) return s;
    if (this.underlay.isOwn(id)) {
      s = SRC_OWN;
    } else {
      const host = this.underlay.hostOf(id);
      let v: Vtep | null | undefined = this.table.find(host);
      if (v === undefined && (this.cfg.acceptAny || this.cfg.group !== null)) {
        const port = this.cfg.group?.port ?? this.cfg.remotes[0]?.port ?? 4789;
        v = this.table.addDynamic(host, this.underlay.destination(host, port), this.nowMs);
        if (v !== null) this.ctx.log.info(`vxlan vni ${this.cfg.vni}: new VTEP ${host}`);
      }
      s = v === undefined || v === null ? SRC_REFUSED : v.slot + 1;
    }
    this.srcState[id] = s;
    return s;
  }

  private onBatch(rx: RxBatch, count: number): void {
    const port = this.port;
    const sink = this.ctx.sink;
    const table = this.table;
    const vx = this.vx;
    const vni = this.cfg.vni;
    const nowMs = this.nowMs;
    for (let i = 0; i < count; i++) {
      const buf = rx.bufs[i];
      const len = rx.lengths[i];
      vx.rxPackets++;
      const id = rx.peers[i];
      const s = this.resolve(id);
      if (s <= 0) {
        if (s === SRC_OWN) {
          vx.rxOwn++;
        } else {
          // A refused source keeps nothing here or in the underlay (its next datagram is looked up afresh).
          vx.rxUnknownVtep++;
          this.srcState[id] = SRC_UNKNOWN;
          this.underlay.forget(id);
        }
        continue;
      }
      const vtep = table.slots[s - 1]!;
      const check = vxlanCheck(buf, 0, len, vni);
      switch (check) {
        case VXLAN_OK:
          break;
        case VXLAN_SHORT:
          vx.rxShort++;
          continue;
        case VXLAN_BAD_FLAGS:
          vx.rxBadFlags++;
          continue;
        case VXLAN_BAD_RESERVED:
          vx.rxBadReserved++;
          continue;
        case VXLAN_OTHER_VNI:
          vx.rxOtherVni++;
          vx.lastOtherVni = vxlanVni(buf, 0);
          continue;
        default: {
          const never: never = check;
          void never;
          continue;
        }
      }
      vtep.lastRxMs = nowMs;
      vtep.rxPackets++;
      vtep.rxBytes += len;
      const innerLen = len - VXLAN_HEADER_BYTES;
      // Learn unicast sources only; the switch learns the same MAC on this port.
      if (innerLen >= 14 && (buf[VXLAN_HEADER_BYTES + 6] & 1) === 0) {
        table.learn(buf.readUInt32BE(VXLAN_HEADER_BYTES + 6) * 0x10000 + buf.readUInt16BE(VXLAN_HEADER_BYTES + 10), vtep, nowMs);
      }
      sink.input(port, buf, VXLAN_HEADER_BYTES, innerLen);
    }
  }

  tick(nowMs: number): void {
    // Before the first tick the time is 0; what was stamped then happened just now.
    if (this.nowMs === 0) this.table.restamp(nowMs);
    this.nowMs = nowMs;
    const removed = this.table.sweep(nowMs);
    for (const v of removed) this.ctx.log.info(`vxlan vni ${this.cfg.vni}: VTEP ${v.host} silent for ${Math.round(this.table.opts.vtepIdleMs / 1000)} s, removed`);
  }

  async close(): Promise<void> {
    if (this.started) this.ctx.sink.removePort(this.port);
    this.started = false;
    this.port.up = false;
    this.underlay.close();
  }

  qemuNetdev(): string | null {
    return null;
  }

  vxlanStatus(): VxlanStatus {
    const now = this.nowMs;
    const vteps: VxlanVtepStatus[] = [];
    for (const v of this.table.slots) {
      if (v === undefined) continue;
      vteps.push({
        address: v.host,
        static: v.isStatic,
        lastRxS: v.rxPackets === 0 ? null : Math.round((now - v.lastRxMs) / 100) / 10,
        rxPackets: v.rxPackets,
        txPackets: v.txPackets,
        macs: this.table.macsBehind(v, now).map((m) => ({ mac: formatMac(m.mac), ageS: Math.round(m.ageMs / 100) / 10 })),
      });
    }
    const errs = this.underlay.errors();
    return {
      vni: this.cfg.vni,
      underlay: this.underlay.describe(),
      group: this.cfg.group ? this.cfg.group.address : null,
      acceptAny: this.cfg.acceptAny || this.cfg.group !== null,
      counters: {
        ...this.vx, rxPackets: this.vx.rxPackets + errs.notAccepted, rxUnknownVtep: this.vx.rxUnknownVtep + errs.notAccepted,
        underlaySendErrors: errs.send, underlayRecvErrors: errs.recv,
      },
      table: { macs: this.table.size, vteps: this.table.vteps, ...this.table.counters },
      vteps,
    };
  }

  status(): VxlanTransportStatus {
    const remotes = this.table.statics.map((v) => v.host);
    const address = `${this.underlay.describe()} vni ${this.cfg.vni}` + (remotes.length > 0 ? ` → ${remotes.join(', ')}` : '');
    return {
      url: this.url, kind: 'vxlan', state: this.started ? 'listening' : 'closed', address,
      portCount: this.started ? 1 : 0, native: this.underlay.native, vxlan: this.vxlanStatus(),
    };
  }
}

/**
 * The IPv4 address of interface `dev` (the first one), for joining a group on it. Throws
 * LP_ERR_NO_DEVICE naming the port and the interface.
 */
export function interfaceAddress(dev: string, what: string): string {
  const addrs = networkInterfaces()[dev];
  if (addrs === undefined) {
    throw new LanpartyError('LP_ERR_NO_DEVICE', `${what}: no interface "${dev}" (have ${Object.keys(networkInterfaces()).join(', ')}); check dev= (ip link)`);
  }
  const v4 = addrs.find((a) => a.family === 'IPv4');
  if (v4 === undefined) throw new LanpartyError('LP_ERR_NO_DEVICE', `${what}: interface "${dev}" has no IPv4 address; add one (ip addr add) or bind to an address`);
  return v4.address;
}

/**
 * Builds a VXLAN transport over a UDP underlay bound to `bind` (the locator's address, explicit).
 * In group mode the group is joined on `dev`'s interface, or on the bound address's interface.
 */
export function openVxlan(
  url: string,
  bind: { host: string; port: number },
  cfg: VxlanConfig,
  multicast: { dev: string | null; ttl: number },
  ctx: TransportContext,
): VxlanTransport {
  const what = `port ${url}`;
  let group: UdpUnderlayConfig['group'] = null;
  if (cfg.group) {
    let interfaceAddr = bind.host;
    if (multicast.dev !== null) interfaceAddr = interfaceAddress(multicast.dev, what);
    else if (bind.host === '0.0.0.0') throw new LanpartyError('LP_ERR_CONFIG', `${what}: group mode with a wildcard bind needs dev=INTERFACE to join the group on`);
    group = { address: cfg.group.address, interfaceAddr, ttl: multicast.ttl };
  }
  // Static mode: a stranger's datagram is dropped at the socket and leaves no state (counted as
  // an unknown VTEP); accept=any and group mode learn VTEPs from any source.
  const acceptOnly = cfg.acceptAny || cfg.group !== null ? null : cfg.remotes.map((r) => r.host);
  return new VxlanTransport(url, cfg, ctx, new UdpUnderlay({ host: bind.host, port: bind.port, what, group, acceptOnly }));
}
