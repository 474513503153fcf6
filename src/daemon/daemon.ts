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

  constructor(readonly config: Config, readonly log: Logger, private readonly opts: DaemonOptions) {
    this.sw = new Switch({
      macAgeMs: config.switch.macAgeMs,
      macTableSize: config.switch.macTableSize,
      maxFrameBytes: config.switch.maxFrameBytes,
    }, log.child('switch'), Date.now());
  }

  async start(): Promise<void> {
    const ctx = { sink: this.sw, log: this.log, maxFrameBytes: this.config.switch.maxFrameBytes };
    try {
      for (const p of this.config.ports) {
        const t = openTransport(p, ctx, this.config.peerIdleMs);
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
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.timer = setInterval(() => this.tick(Date.now()), 1000);
  }

  tick(nowMs: number): void {
    this.sw.tick(nowMs);
    for (const t of this.transports) t.tick(nowMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const t of this.transports.splice(0).reverse()) {
      try {
        await t.close();
      } catch (err) {
        this.log.error(`closing ${t.url}: ${(err as Error).message}`);
      }
    }
  }
}
