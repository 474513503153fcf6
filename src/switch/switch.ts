/**
 * The learning switch: one forwarding decision per frame, in one readable function.
 *
 * Stages of `input(port, buf, off, len)`, in order:
 *   1. Count the frame on its ingress port.
 *   2. Drop and count runts (< 14 bytes) and frames over the switch maximum.
 *   3. Mirror to taps (capture), if any are attached.
 *   4. Learn the source MAC on the ingress port (never a group source).
 *   5. Group destination (broadcast, multicast): flood to every other port.
 *   6. Known unicast: send to its port, or drop as `self-loop` if that is the ingress port.
 *   7. Unknown unicast: flood to every other port.
 * Frames are forwarded untouched, 802.1Q tags included; the VLAN ID only picks the MAC table.
 * A port is forwarding or blocking (`setForwarding`: the spanning tree of peer links blocks one end
 * of a redundant link). A blocking port stays in the switch with its id and counters, but floods
 * skip it, and a frame it receives is counted and dropped (`port-down`), so no MAC is learned there.
 * A port whose `send` throws (a bug in that port) loses that frame, counted as its `port-error`
 * drop and logged (rate limited); the flood goes on to the ports after it. A tap that throws is
 * counted in `tapErrors`. The try blocks sit around the send loops, not inside them: entering one
 * costs nothing measurable in V8, and a throw restarts the loop after the port that threw.
 *
 * The switch never reads a clock: `tick(nowMs)` sets the time (the daemon calls it every second)
 * and runs the ageing sweep. Dependencies: wire and util only.
 */
import { ETH_HEADER_BYTES, dstMac, srcMac, vlanId, formatMac } from '../wire/index.js';
import { type Logger, RateLimitedLog, silentLogger } from '../util/index.js';
import { MacTable } from './mac-table.js';
import { PortCounters, DROP_REASONS, type FrameSink, type Port } from './port.js';
import diagnostics_channel from 'node:diagnostics_channel';

/** Published on port changes and MAC moves; cost nothing without subscribers. */
export const portUpChannel = diagnostics_channel.channel('lanparty:port:up');
export const portDownChannel = diagnostics_channel.channel('lanparty:port:down');
export const macMoveChannel = diagnostics_channel.channel('lanparty:mac:move');

export interface SwitchOptions {
  /** Ageing time for learned MACs in milliseconds (802.1D default 300 s). */
  macAgeMs: number;
  /** Most MAC entries held over all VLANs; when full, the port holding the most loses its oldest. */
  macTableSize: number;
  /** Most MAC entries learned on one port (its oldest goes first); macTableSize when not set. */
  macPortSize: number;
  /** Largest frame accepted, bytes from the destination MAC, no FCS. */
  maxFrameBytes: number;
}

export const DEFAULT_SWITCH_OPTIONS: SwitchOptions = {
  macAgeMs: 300_000,
  macTableSize: 8192,
  macPortSize: 8192,
  // A guest MTU of 65535 plus Ethernet header and one VLAN tag.
  maxFrameBytes: 65535 + 14 + 4,
};

/** Called for every frame the switch accepts, before forwarding. Must not keep `buf`. */
export type Tap = (port: Port, buf: Buffer, off: number, len: number) => void;

export class SwitchCounters {
  floods = 0;
  unicasts = 0;
  runts = 0;
  oversize = 0;
  selfLoops = 0;
  /** Frames lost because a port's send threw (also counted per port as `port-error`). */
  portErrors = 0;
  /** Taps (capture, address snooping) that threw on a frame; the frame was still forwarded. */
  tapErrors = 0;
}

export class Switch implements FrameSink {
  readonly table: MacTable;
  readonly counters = new SwitchCounters();
  readonly opts: SwitchOptions;
  /** Every port in the switch, forwarding or blocking, in the order added. */
  ports: Port[] = [];
  /** The forwarding ones, in the same order: what a flood iterates. */
  private floodPorts: Port[] = [];
  /** Ports the spanning tree blocks (see `setForwarding`). */
  private readonly blocking = new Set<Port>();
  /**
   * Totals of the ports that have gone (closed stream connections, idle datagram peers), so their
   * frames and drops (bad-length, truncated ...) stay visible after the port is removed.
   */
  readonly retired = new PortCounters();
  retiredPorts = 0;
  private nextPortId = 1;
  private nowMs = 0;
  private taps: Tap[] = [];
  private readonly log: Logger;
  private readonly moveLog: RateLimitedLog;
  private readonly errorLog: RateLimitedLog;
  /** Evictions since the last eviction log line, and when that line was written. */
  private evictedUnlogged = 0;
  private evictLogMs = -Infinity;

  constructor(opts: Partial<SwitchOptions> = {}, log: Logger = silentLogger, nowMs = 0) {
    this.opts = { ...DEFAULT_SWITCH_OPTIONS, ...opts };
    if (opts.macPortSize === undefined) this.opts.macPortSize = this.opts.macTableSize;
    this.table = new MacTable(this.opts.macTableSize, this.opts.macAgeMs, this.opts.macPortSize);
    this.log = log;
    this.nowMs = nowMs;
    this.moveLog = new RateLimitedLog((m) => this.log.info(m));
    this.table.onMove = (mac, vlan, from, to) => {
      if (macMoveChannel.hasSubscribers) macMoveChannel.publish({ mac, vlan, from, to });
      this.moveLog.write(this.nowMs, `MAC ${formatMac(mac)}${vlan ? ' vlan ' + vlan : ''} moved from port ${from.id} (${from.name}) to port ${to.id} (${to.name})`);
    };
    this.errorLog = new RateLimitedLog((m) => this.log.error(m));
    this.table.onEvict = (mac, vlan, from, limit) => {
      // At most one line per 10 s however fast a flood evicts; the string is built only then.
      this.evictedUnlogged++;
      if (this.nowMs - this.evictLogMs < EVICT_LOG_INTERVAL_MS) return;
      const why = limit === 'port'
        ? `port ${from.id} (${from.name}) reached its limit of ${this.table.portCapacity} MACs`
        : `the table is full (${this.table.capacity}) and port ${from.id} (${from.name}) holds the most (${this.table.countOn(from) + 1})`;
      this.log.info(`MAC table: evicted ${this.evictedUnlogged} entr${this.evictedUnlogged === 1 ? 'y' : 'ies'}, the last ${formatMac(mac)}${vlan ? ' vlan ' + vlan : ''}: ${why}`);
      this.evictedUnlogged = 0;
      this.evictLogMs = this.nowMs;
    };
  }

  /** Adds a port, forwarding unless `forwarding` is false (a tree port starts blocking). */
  addPort(port: Port, forwarding = true): void {
    if (this.ports.includes(port)) throw new Error(`switch: port ${port.id} (${port.name}) added twice`);
    port.id = this.nextPortId++;
    // Copy-on-write (here and below) so a flood in progress keeps iterating the old array.
    this.ports = this.ports.concat([port]);
    if (forwarding) this.floodPorts = this.floodPorts.concat([port]);
    else this.blocking.add(port);
    this.log.info(`port ${port.id} up: ${port.name}${port.endpoint() ? ' (' + port.endpoint() + ')' : ''}${forwarding ? '' : ', blocking'}`);
    if (portUpChannel.hasSubscribers) portUpChannel.publish({ port });
  }

  removePort(port: Port): void {
    const i = this.ports.indexOf(port);
    if (i < 0) return;
    this.ports = this.ports.slice(0, i).concat(this.ports.slice(i + 1));
    this.floodPorts = this.floodPorts.filter((p) => p !== port);
    this.blocking.delete(port);
    this.table.flushPort(port);
    addCounters(this.retired, port.counters);
    this.retiredPorts++;
    this.log.info(`port ${port.id} down: ${port.name}`);
    if (portDownChannel.hasSubscribers) portDownChannel.publish({ port });
  }

  /**
   * Blocks or unblocks a port (the spanning tree's decision). Blocking forgets the MACs learned on
   * it, so unicasts to them flood over the ports that still forward until they are heard again.
   */
  setForwarding(port: Port, forwarding: boolean): void {
    if (!this.ports.includes(port)) throw new Error(`switch: setForwarding on port ${port.id} (${port.name}), which is not in the switch`);
    if (forwarding !== this.blocking.has(port)) return;
    if (forwarding) {
      this.blocking.delete(port);
      this.floodPorts = this.ports.filter((p) => !this.blocking.has(p));
    } else {
      this.blocking.add(port);
      this.floodPorts = this.floodPorts.filter((p) => p !== port);
      this.table.flushPort(port);
    }
    this.log.info(`port ${port.id} ${forwarding ? 'forwarding' : 'blocking'}: ${port.name}`);
  }

  /** Whether `port` forwards (false for a blocking port and for one not in the switch). */
  isForwarding(port: Port): boolean {
    return !this.blocking.has(port) && this.ports.includes(port);
  }

  /** The forwarding ports (a flood's targets), for commands that send to every port. */
  forwardingPorts(): readonly Port[] { return this.floodPorts; }

  /** After a topology change elsewhere (the peer links' spanning tree): forget learned MACs. */
  flushLearned(reason: string): void {
    const n = this.table.flushLearned();
    this.log.info(`topology change (${reason}): forgot ${n} learned MACs; flooding until they are heard again`);
  }

  addTap(tap: Tap): void { this.taps = this.taps.concat([tap]); }
  removeTap(tap: Tap): void { this.taps = this.taps.filter((t) => t !== tap); }

  /** Sets the switch's time and ages out old MACs. */
  tick(nowMs: number): void {
    this.nowMs = nowMs;
    this.table.sweep(nowMs);
  }

  now(): number { return this.nowMs; }

  input(port: Port, buf: Buffer, off: number, len: number): void {
    const c = port.counters;
    c.rxFrames++;
    c.rxBytes += len;
    if (len > c.rxLargestBytes) c.rxLargestBytes = len;
    if (len < ETH_HEADER_BYTES) {
      c.drops.runt++;
      this.counters.runts++;
      return;
    }
    if (len > this.opts.maxFrameBytes) {
      c.drops.oversize++;
      this.counters.oversize++;
      return;
    }
    if (this.blocking.size !== 0 && this.blocking.has(port)) {
      c.drops['port-down']++;
      return;
    }
    if (this.taps.length > 0) this.runTaps(port, buf, off, len);

    const vlan = vlanId(buf, off, len);
    if ((buf[off + 6] & 1) === 0) this.table.learn(srcMac(buf, off), vlan, port, this.nowMs);

    if ((buf[off] & 1) === 0) {
      const out = this.table.lookup(dstMac(buf, off), vlan);
      if (out !== undefined) {
        if (out === port) {
          c.drops['self-loop']++;
          this.counters.selfLoops++;
          return;
        }
        this.counters.unicasts++;
        try {
          out.send(buf, off, len);
        } catch (err) {
          this.portFailed(out, err);
        }
        return;
      }
    }
    this.counters.floods++;
    const ports = this.floodPorts;
    let i = 0;
    while (i < ports.length) {
      try {
        for (; i < ports.length; i++) {
          const p = ports[i];
          if (p !== port) p.send(buf, off, len);
        }
      } catch (err) {
        this.portFailed(ports[i], err);
        i++;
      }
    }
  }

  private runTaps(port: Port, buf: Buffer, off: number, len: number): void {
    const taps = this.taps;
    let i = 0;
    while (i < taps.length) {
      try {
        for (; i < taps.length; i++) taps[i](port, buf, off, len);
      } catch (err) {
        this.counters.tapErrors++;
        this.errorLog.write(this.nowMs, `tap ${i} threw on a frame from port ${port.id} (${port.name}); frame still forwarded: ${errorText(err)}`);
        i++;
      }
    }
  }

  /** A port's send threw: the frame is lost on that port only, counted and logged (rate limited). */
  private portFailed(p: Port, err: unknown): void {
    p.counters.drops['port-error']++;
    this.counters.portErrors++;
    this.errorLog.write(this.nowMs, `port ${p.id} (${p.name}): send threw, frame dropped (port-error): ${errorText(err)}`);
  }
}

const EVICT_LOG_INTERVAL_MS = 10_000;

function errorText(err: unknown): string {
  return err instanceof Error ? (err.stack ?? err.message) : String(err);
}

/** to += from, counter by counter (the largest frame only grows). */
function addCounters(to: PortCounters, from: PortCounters): void {
  to.rxFrames += from.rxFrames; to.rxBytes += from.rxBytes;
  to.txFrames += from.txFrames; to.txBytes += from.txBytes;
  if (from.rxLargestBytes > to.rxLargestBytes) to.rxLargestBytes = from.rxLargestBytes;
  for (const reason of DROP_REASONS) to.drops[reason] += from.drops[reason];
}
