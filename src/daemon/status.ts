/**
 * Builds the `status` reply: ports with counters and rates, transports, the MAC table, switch
 * totals. Rates are deltas over the last one-second tick, kept per port in a WeakMap so ports carry
 * no control-plane state.
 */
import type { Port, Switch } from '../switch/index.js';
import type { Transport, TransportStatus } from '../transports/index.js';
import type { BusyPollState } from '../io/index.js';
import { formatMac } from '../wire/index.js';
import type { ControlCounters } from '../control/index.js';

class RateState {
  rxFrames = 0; txFrames = 0; rxBytes = 0; txBytes = 0; atMs = 0;
  rxFps = 0; txFps = 0; rxBps = 0; txBps = 0;
}

export class RateTracker {
  private readonly states = new WeakMap<Port, RateState>();
  /** When the previous sample was taken; -1 before the first. */
  private lastMs = -1;
  sample(ports: readonly Port[], nowMs: number): void {
    for (const p of ports) {
      let s = this.states.get(p);
      if (s === undefined) {
        // A port that came up since the previous sample counted from 0 within that interval: its
        // first rate is over the interval (low if it came late in it), not 0 until the next one.
        s = new RateState();
        s.atMs = this.lastMs >= 0 ? this.lastMs : nowMs;
        this.states.set(p, s);
      }
      const dt = (nowMs - s.atMs) / 1000;
      const c = p.counters;
      if (dt > 0) {
        s.rxFps = (c.rxFrames - s.rxFrames) / dt;
        s.txFps = (c.txFrames - s.txFrames) / dt;
        s.rxBps = ((c.rxBytes - s.rxBytes) * 8) / dt;
        s.txBps = ((c.txBytes - s.txBytes) * 8) / dt;
      }
      s.rxFrames = c.rxFrames; s.txFrames = c.txFrames; s.rxBytes = c.rxBytes; s.txBytes = c.txBytes; s.atMs = nowMs;
    }
    this.lastMs = nowMs;
  }
  rates(p: Port): { rxFramesPerS: number; txFramesPerS: number; rxBitsPerS: number; txBitsPerS: number } {
    const s = this.states.get(p);
    return { rxFramesPerS: s?.rxFps ?? 0, txFramesPerS: s?.txFps ?? 0, rxBitsPerS: s?.rxBps ?? 0, txBitsPerS: s?.txBps ?? 0 };
  }
}

export interface PortStatus {
  id: number; name: string; kind: string; endpoint: string;
  /** False while the spanning tree blocks the port (it stays in the switch, with its counters). */
  forwarding: boolean;
  rxFrames: number; rxBytes: number; txFrames: number; txBytes: number;
  rates: ReturnType<RateTracker['rates']>;
  drops: Record<string, number>;
  /** Stream ports: reading paused for a congested port, and pauses that ran out (Port.flow). */
  flow?: { pauses: number; pauseTimeouts: number };
}

export interface MacStatus { mac: string; vlan: number; port: number; portName: string; ageS: number; ips: string[]; pinned: boolean }

export interface StatusReport {
  version: string;
  pid: number;
  uptimeS: number;
  /** Memory of the lanparty process (process.memoryUsage), for soak tests and people. */
  memory: { rssBytes: number; heapUsedBytes: number; externalBytes: number };
  config: string;
  native: boolean;
  /** Busy polling of the native data path (null: no addon). */
  busyPoll: BusyPollState | null;
  switch: {
    counters: Record<string, number>;
    table: { size: number; capacity: number; learned: number; moved: number; expired: number; evicted: number; pinnedRefused: number; flushed: number };
    /** Addresses seen per MAC (ip-snoop): MACs and conflicts held, and what was forgotten. */
    ipSnoop?: { macs: number; conflicts: number; expired: number; evicted: number; conflictsDropped: number };
    /** Parts of the 1 s tick and switch event handlers that threw (each logged; the rest ran). */
    internalErrors?: number;
    /** Totals of ports that have gone (closed connections, idle peers), drops included. */
    retired: { ports: number; rxFrames: number; rxBytes: number; txFrames: number; txBytes: number; drops: Record<string, number> };
  };
  transports: TransportStatus[];
  ports: PortStatus[];
  macs: MacStatus[];
  services: unknown;
  /** Control connections open now, and what the control server refused or failed at (control/server.ts). */
  control: ControlCounters & { connections: number };
  /** The web view's refusals and failures (daemon/web/server.ts), null when it is off. */
  web: { badRequests: number; handlerErrors: number; refusedConnections: number; evictedConnections: number } | null;
}

export function portStatus(p: Port, rates: RateTracker, forwarding: boolean): PortStatus {
  const c = p.counters;
  return {
    id: p.id, name: p.name, kind: p.kind, endpoint: p.endpoint(), forwarding,
    rxFrames: c.rxFrames, rxBytes: c.rxBytes, txFrames: c.txFrames, txBytes: c.txBytes,
    rates: rates.rates(p), drops: { ...c.drops },
    ...(p.flow ? { flow: p.flow() } : {}),
  };
}

export function macRows(sw: Switch, ipsOf: (mac: number) => string[]): MacStatus[] {
  const now = sw.now();
  return sw.table.entries(now)
    .map((e) => ({ mac: formatMac(e.mac), vlan: e.vlan, port: e.port.id, portName: e.port.name, ageS: Math.round(e.ageMs / 100) / 10, ips: ipsOf(e.mac), pinned: e.pinned }))
    .sort((a, b) => a.port - b.port || a.mac.localeCompare(b.mac));
}

export function transportRows(ts: readonly Transport[]): TransportStatus[] {
  return ts.map((t) => t.status());
}
