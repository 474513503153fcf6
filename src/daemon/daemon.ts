/**
 * The composition root: config → switch, transports, services, control. The only module that
 * imports every part. Owns the one clock: a 1 s tick sets the switch's time and ages MACs and peers.
 */
import { Switch } from '../switch/switch.js';
import type { Config } from '../config/types.js';
import type { Logger } from '../util/logger.js';
import { LanpartyError } from '../util/errors.js';
import type { Transport } from '../transports/transport.js';
import { openTransport } from './transports.js';
import { ControlServer } from '../control/server.js';
import { portUpChannel, portDownChannel, macMoveChannel } from '../switch/switch.js';
import type { Port } from '../switch/port.js';
import { formatMac } from '../wire/ethernet.js';
import { busyPollState, nativeAvailable, nativeLoadError, setBusyPoll } from '../transports/batch-io.js';
import { IpSnoop } from './ip-snoop.js';
import { RateTracker, portStatus, macRows, transportRows, type StatusReport } from './status.js';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { runtimeDir } from '../config/load.js';
import { ensurePrivateDir } from '../util/private-dir.js';
import { registrars } from './commands/index.js';
import { startServices, type Services } from '../services/index.js';
import type { WebCounters } from './web/server.js';

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

export interface DaemonOptions {
  /** Ports that came from defaults, not from the user: one that cannot open is skipped with a line. */
  portsAreDefaults: boolean;
}

export class Daemon {
  readonly sw: Switch;
  readonly transports: Transport[] = [];
  readonly skipped: Array<{ url: string; reason: string }> = [];
  private timer: NodeJS.Timeout | null = null;
  readonly startedAtMs = Date.now();
  readonly control: ControlServer;
  readonly rates = new RateTracker();
  readonly snoop = new IpSnoop();
  /** Extra status sections (services) registered by their owners. */
  readonly statusSections = new Map<string, () => unknown>();
  services: Services | null = null;
  /** The web view's counters while it runs (lanparty up --web), else null. */
  webCounters: WebCounters | null = null;
  private readonly stopHooks: Array<() => void> = [];
  private readonly onPortUp = (m: unknown) => this.control.emit('port:up', this.portEvent((m as { port: Port }).port));
  private readonly onPortDown = (m: unknown) => this.control.emit('port:down', this.portEvent((m as { port: Port }).port));
  private readonly onMacMove = (m: unknown) => {
    const { mac, vlan, from, to } = m as { mac: number; vlan: number; from: Port; to: Port };
    this.control.emit('mac:move', { mac: formatMac(mac), vlan, from: from.id, to: to.id });
  };

  constructor(readonly config: Config, readonly log: Logger, private readonly opts: DaemonOptions) {
    this.sw = new Switch({
      macAgeMs: config.switch.macAgeMs,
      macTableSize: config.switch.macTableSize,
      maxFrameBytes: config.switch.maxFrameBytes,
    }, log.child('switch'), Date.now());
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
        retired: {
          ports: this.sw.retiredPorts,
          rxFrames: this.sw.retired.rxFrames, rxBytes: this.sw.retired.rxBytes,
          txFrames: this.sw.retired.txFrames, txBytes: this.sw.retired.txBytes,
          drops: { ...this.sw.retired.drops },
        },
      },
      transports: transportRows(this.transports),
      ports: this.sw.ports.map((p) => portStatus(p, this.rates)),
      macs: macRows(this.sw, (m) => this.snoop.ipsOf(m)),
      services: sections,
      control: { connections: this.control.connectionCount, ...this.control.counters },
      web: this.webCounters ? { ...this.webCounters } : null,
    };
  }

  async start(): Promise<void> {
    const ctx = { sink: this.sw, log: this.log, maxFrameBytes: this.config.switch.maxFrameBytes };
    setBusyPoll(this.config.switch.busyPollUs, this.config.switch.busyPollBudgetPercent);
    this.sw.addTap(this.snoop.tap);
    portUpChannel.subscribe(this.onPortUp);
    portDownChannel.subscribe(this.onPortDown);
    macMoveChannel.subscribe(this.onMacMove);
    try {
      this.prepareRuntimeDir();
      await this.control.start();
      for (const p of this.config.ports) {
        const t = openTransport(p, ctx, this.config.peerIdleMs);
        // Give the transport the clock before its first frame, so a peer heard in the first
        // second is not taken as idle since time zero.
        t.tick(Date.now());
        try {
          await t.start();
        } catch (err) {
          if (this.opts.portsAreDefaults && err instanceof LanpartyError && err.code === 'LP_ERR_NATIVE') {
            this.skipped.push({ url: p.url, reason: err.message });
            continue;
          }
          throw err;
        }
        this.transports.push(t);
      }
      const svc = this.config.services;
      if (svc.subnet !== null) {
        this.services = await startServices({ subnet: svc.subnet, hostAddress: svc.hostAddress, dhcp: svc.dhcp, dnsEnabled: svc.dnsEnabled }, this.sw, this.log.child('lan'));
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

  tick(nowMs: number): void {
    this.sw.tick(nowMs);
    this.snoop.setNow(nowMs);
    for (const t of this.transports) t.tick(nowMs);
    this.rates.sample(this.sw.ports, nowMs);
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
