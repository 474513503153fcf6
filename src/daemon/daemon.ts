/**
 * The composition root: config → switch, transports, services, control. The only module that
 * imports every part. Owns the one clock: a 1 s tick sets the switch's time and ages MACs and peers.
 */
import { Switch, portUpChannel, portDownChannel, macMoveChannel, type Port } from '../switch/index.js';
import { type Config, runtimeDir } from '../config/index.js';
import { type Logger, RateLimitedLog, LanpartyError, ensurePrivateDir, tightenPrivateDir } from '../util/index.js';
import { SegmentRegistry, type Transport } from '../transports/index.js';
import { openTransport } from './transports.js';
import { ControlServer } from '../control/index.js';
import { formatMac } from '../wire/index.js';
import { busyPollState, nativeAvailable, nativeLoadError, setBusyPoll } from '../io/index.js';
import { IpSnoop } from './ip-snoop.js';
import { RateTracker, portStatus, macRows, transportRows, type StatusReport } from './status.js';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { registrars } from './commands/index.js';
import { startServices, type Services } from '../services/index.js';
import type { WebCounters } from './web/index.js';

function memoryNow(): StatusReport['memory'] {
  const m = process.memoryUsage();
  return { rssBytes: m.rss, heapUsedBytes: m.heapUsed, externalBytes: m.external };
}

/** Whether the native batched data path loaded, and why not. */
export function nativeDataPath(): { available: boolean; error: string | null } {
  return { available: nativeAvailable(), error: nativeLoadError() };
}

export function lanpartyVersion(): string {
  return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

export class Daemon {
  readonly sw: Switch;
  readonly transports: Transport[] = [];
  readonly skipped: Array<{ url: string; reason: string }> = [];
  private timer: NodeJS.Timeout | null = null;
  readonly startedAtMs = Date.now();
  readonly control: ControlServer;
  readonly rates = new RateTracker();
  readonly snoop: IpSnoop;
  /**
   * Parts of the 1 s tick (a transport's, the switch's ...) and handlers of switch events that
   * threw (bugs); the others still ran.
   */
  internalErrors = 0;
  private readonly internalErrorLog: RateLimitedLog;
  /** Extra status sections (services) registered by their owners. */
  readonly statusSections = new Map<string, () => unknown>();
  services: Services | null = null;
  /** The web view's counters while it runs (lanparty up --web), else null. */
  webCounters: WebCounters | null = null;
  private readonly stopHooks: Array<() => void> = [];
  // diagnostics_channel rethrows a subscriber's error as an uncaught exception: guarded.
  private readonly onPortUp = (m: unknown) => this.guard('port:up event', this.sw.now(), () => this.control.emit('port:up', this.portEvent((m as { port: Port }).port)));
  private readonly onPortDown = (m: unknown) => this.guard('port:down event', this.sw.now(), () => this.control.emit('port:down', this.portEvent((m as { port: Port }).port)));
  private readonly onMacMove = (m: unknown) => this.guard('mac:move event', this.sw.now(), () => {
    const { mac, vlan, from, to } = m as { mac: number; vlan: number; from: Port; to: Port };
    this.control.emit('mac:move', { mac: formatMac(mac), vlan, from: from.id, to: to.id });
  });

  constructor(readonly config: Config, readonly log: Logger) {
    this.sw = new Switch({
      macAgeMs: config.switch.macAgeMs,
      macTableSize: config.switch.macTableSize,
      macPortSize: config.switch.macPortSize,
      maxFrameBytes: config.switch.maxFrameBytes,
    }, log.child('switch'), Date.now());
    // Addresses are kept per MAC as long as the MAC table would keep the MAC.
    this.snoop = new IpSnoop(config.switch.macTableSize, config.switch.macAgeMs);
    this.internalErrorLog = new RateLimitedLog((m) => this.log.error(m));
    this.control = new ControlServer(config.control.socketPath, log.child('control'));
    this.control.register({ name: 'status', usage: 'status: ports, counters, rates, MAC table, services', handler: () => this.status() });
    for (const r of registrars) r(this);
    this.control.register({ name: 'ping', usage: 'ping: check that lanparty answers', handler: () => ({ pong: true, pid: process.pid }) });
  }

  /** Runs `fn` when the daemon stops (command modules unsubscribe from process-wide channels). */
  onStop(fn: () => void): void {
    this.stopHooks.push(fn);
  }

  private portEvent(p: Port): unknown {
    return { id: p.id, name: p.name, kind: p.kind, endpoint: p.endpoint() };
  }

  status(): StatusReport {
    const sections: Record<string, unknown> = {};
    for (const [k, f] of this.statusSections) sections[k] = f();
    return {
      version: lanpartyVersion(),
      pid: process.pid,
      uptimeS: Math.round((Date.now() - this.startedAtMs) / 1000),
      memory: memoryNow(),
      config: this.config.source,
      native: nativeAvailable(),
      busyPoll: busyPollState(),
      switch: {
        counters: { ...this.sw.counters },
        table: { size: this.sw.table.size, capacity: this.sw.table.capacity, ...this.sw.table.counters },
        ipSnoop: { macs: this.snoop.size, conflicts: this.snoop.conflicts.size, ...this.snoop.counters },
        internalErrors: this.internalErrors,
        retired: {
          ports: this.sw.retiredPorts,
          rxFrames: this.sw.retired.rxFrames, rxBytes: this.sw.retired.rxBytes,
          txFrames: this.sw.retired.txFrames, txBytes: this.sw.retired.txBytes,
          drops: { ...this.sw.retired.drops },
        },
      },
      transports: transportRows(this.transports),
      ports: this.sw.ports.map((p) => portStatus(p, this.rates, this.sw.isForwarding(p))),
      macs: macRows(this.sw, (m) => this.snoop.ipsOf(m)),
      services: sections,
      control: { connections: this.control.connectionCount, ...this.control.counters },
      web: this.webCounters ? { ...this.webCounters } : null,
    };
  }

  async start(): Promise<void> {
    // One segment registry per switch: the multicast groups the peer links' tree runs over.
    const ctx = { sink: this.sw, log: this.log, maxFrameBytes: this.config.switch.maxFrameBytes, segments: new SegmentRegistry() };
    setBusyPoll(this.config.switch.busyPollUs, this.config.switch.busyPollBudgetPercent);
    this.sw.addTap(this.snoop.tap);
    portUpChannel.subscribe(this.onPortUp);
    portDownChannel.subscribe(this.onPortDown);
    macMoveChannel.subscribe(this.onMacMove);
    try {
      this.prepareRuntimeDir();
      await this.control.start();
      if (this.config.privateDir !== null) tightenPrivateDir(this.config.privateDir, 'private mode directory');
      for (const [i, p] of this.config.ports.entries()) {
        const t = openTransport(p, ctx, this.config.peerIdleMs);
        // Give the transport the clock before its first frame, so a peer heard in the first
        // second is not taken as idle since time zero.
        t.tick(Date.now());
        try {
          await t.start();
        } catch (err) {
          // A port the user named (command line, config file, --tap) stops lanparty with its
          // error; only one of lanparty's own defaults may be left out, and `up` says so.
          if (i < this.config.defaultPortCount && err instanceof LanpartyError && err.code === 'LP_ERR_NATIVE') {
            this.skipped.push({ url: p.url, reason: err.message });
            continue;
          }
          throw err;
        }
        this.transports.push(t);
      }
      const svc = this.config.services;
      if (svc.subnet !== null) {
        // The services see frames, not ports: the switch's MAC table says where a client is, for
        // the per-port lease limits (the virtual host answers untagged frames only, VLAN 0).
        const table = this.sw.table;
        this.services = await startServices({ subnet: svc.subnet, hostAddress: svc.hostAddress, dhcp: svc.dhcp, dnsEnabled: svc.dnsEnabled }, this.sw, this.log.child('lan'),
          undefined, undefined, (mac) => table.lookup(mac, 0));
        this.sw.addPort(this.services.port);
        // The virtual host's MAC is ours: a guest sending with it as source must not take it over.
        this.sw.table.pin(this.services.hostMac, 0, this.services.port, this.sw.now());
        const services = this.services;
        this.statusSections.set('lan', () => services.status());
      }
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.timer = setInterval(() => this.tick(Date.now()), 1000);
  }

  /**
   * The runtime directory, when a socket goes in it (the defaults put the control socket and the
   * unix ports there): created 0700, and refused unless it is this user's and private.
   */
  private prepareRuntimeDir(): void {
    const dir = runtimeDir();
    const inside = (p: string) => path.resolve(p).startsWith(dir + path.sep);
    const paths = [this.config.control.socketPath, ...this.config.ports.flatMap((p) => ('path' in p ? [p.path] : []))];
    if (paths.some(inside)) ensurePrivateDir(dir, 'runtime directory');
  }

  /**
   * The 1 s tick. Each part is guarded: one that throws (a bug) is counted in `internalErrors`
   * and logged (rate limited), and the other parts, and the next tick, still run.
   */
  tick(nowMs: number): void {
    this.guard('tick of the switch', nowMs, () => this.sw.tick(nowMs));
    this.guard('tick of ip snoop', nowMs, () => this.snoop.tick(nowMs));
    for (const t of this.transports) this.guard(`tick of ${t.url}`, nowMs, () => t.tick(nowMs));
    this.guard('tick of rates', nowMs, () => this.rates.sample(this.sw.ports, nowMs));
  }

  private guard(what: string, nowMs: number, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.internalErrors++;
      this.internalErrorLog.write(nowMs, `${what} threw (lanparty goes on): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const fn of this.stopHooks.splice(0)) fn();
    portUpChannel.unsubscribe(this.onPortUp);
    portDownChannel.unsubscribe(this.onPortDown);
    macMoveChannel.unsubscribe(this.onMacMove);
    await this.control.stop();
    if (this.services) {
      this.sw.removePort(this.services.port);
      await this.services.close();
      this.services = null;
    }
    for (const t of this.transports.splice(0).reverse()) {
      try {
        await t.close();
      } catch (err) {
        this.log.error(`closing ${t.url}: ${(err as Error).message}`);
      }
    }
  }
}
