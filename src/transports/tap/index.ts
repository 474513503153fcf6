/**
 * TAP transport: the host itself joins the LAN through a TAP device (`tap://tap0`). Frames the
 * host's stack sends out of tap0 come to the switch; frames the switch sends to this port appear
 * on tap0 as received. One device is one switch port, which stays in the switch for the
 * transport's whole life, so its id and counters survive the device going away and coming back.
 *
 * Two ways in (see docs/transports.md, "tap"):
 *   - attach (`tap://tap0`): the device must exist. Rootless: an administrator runs once
 *     `ip tuntap add mode tap user NAME name tap0`, and lanparty, running as NAME, attaches.
 *   - create (`tap://tap0?create=1&address=10.77.0.254/24&mtu=1500`, root or CAP_NET_ADMIN):
 *     lanparty creates the device (gone again when lanparty exits), sets the MTU and address and
 *     brings it up.
 *
 * Stages for one wakeup: TapDevice rx (up to 64 read()s into slots allocated once) → onBatch →
 * sink.input per frame, as views into the slots. Sends: one write() per frame from the caller's
 * buffer (TapDevice.write), never blocking; a refused frame is a counted drop.
 *
 * Device life (checked in tick(), about once a second, with SIOCGIFINDEX/SIOCGIFFLAGS: unlike
 * /sys/class/net, whose view belongs to the namespace that mounted sysfs, these ask the kernel
 * about this process's own network namespace):
 *   up      attached and IFF_UP: frames flow
 *   down    attached, interface set down: frames to it are dropped as 'port-down'
 *   absent  deleted (read gets EBADFD, write TAP_GONE, or the ifindex vanished or changed): the
 *           fd is closed and frames to it are dropped as 'port-down'; attach mode reattaches when
 *           the name comes back, create mode creates the device again at once.
 * The rest of the LAN never notices: nothing here throws after start().
 */
import { constants as osConstants, networkInterfaces, userInfo } from 'node:os';
import { LanpartyError, type Logger } from '../../util/index.js';
import { PortCounters, type Port, type PortKind } from '../../switch/index.js';
import type { Transport, TransportContext, TransportStatus } from '../transport.js';
import {
  openTapDevice, tapRxSlabBytes, configureInterface, interfaceState, TAP_SENT, TAP_FULL, TAP_DOWN, TAP_GONE, type TapDevice,
} from '../../io/index.js';

export interface TapConfig {
  /** Interface name, 1-15 bytes. */
  name: string;
  /** Create the device when it is missing (needs root or CAP_NET_ADMIN). */
  create: boolean;
  /** IPv4 address for the host on the LAN (create mode only), with its prefix length. */
  address: string | null;
  prefixLength: number;
  /** Interface MTU, bytes of IP packet (create mode only); null leaves the kernel's 1500. */
  mtuBytes: number | null;
}

/** 'up' | 'down' | 'absent' as described above; 'closed' after close(). */
export type TapState = 'up' | 'down' | 'absent' | 'closed';

const IFF_UP = 0x1;

class TapPort implements Port {
  id = 0;
  readonly kind: PortKind = 'tap';
  readonly counters = new PortCounters();
  /** The open device, or null while absent. */
  dev: TapDevice | null = null;
  /** Attached and IFF_UP; false drops every frame as 'port-down'. */
  sendable = false;
  /** Set when a write found the device deleted; tick() then reattaches. */
  gone = false;
  constructor(readonly name: string, readonly maxFrameBytes: number, private readonly ifname: string) {}
  endpoint(): string { return this.ifname; }
  send(buf: Buffer, off: number, len: number): void {
    if (!this.sendable) {
      this.counters.drops['port-down']++;
      return;
    }
    if (len > this.maxFrameBytes) {
      this.counters.drops.oversize++;
      return;
    }
    const r = this.dev!.write(buf, off, len);
    if (r === TAP_SENT) {
      this.counters.txFrames++;
      this.counters.txBytes += len;
    } else if (r === TAP_FULL) {
      this.counters.drops['queue-full']++;
    } else if (r === TAP_DOWN) {
      this.counters.drops['port-down']++;
    } else if (r === TAP_GONE) {
      this.counters.drops['port-down']++;
      this.sendable = false;
      this.gone = true;
    } else {
      this.counters.drops['send-error']++;
    }
  }
  close(): void {}
}

/** The IPv4 addresses (CIDR) the host has on interface `name`, e.g. ["10.77.0.254/24"]. */
export function hostAddresses(name: string): string[] {
  const list = networkInterfaces()[name] ?? [];
  const out: string[] = [];
  for (const a of list) if (a.family === 'IPv4' && a.cidr) out.push(a.cidr);
  return out;
}

let errnoNames: Map<number, string> | null = null;

/** "EBADFD" for 77: the name of a (positive) errno, for log lines. */
function errnoName(errno: number): string {
  if (errnoNames === null) {
    errnoNames = new Map();
    for (const [k, v] of Object.entries(osConstants.errno)) if (!errnoNames.has(v)) errnoNames.set(v, k);
    errnoNames.set(77, 'EBADFD'); // Not in os.constants.errno on Node 20.
  }
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

function userName(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? 'USER';
  }
}

/** Turns an open/configure errno into a LanpartyError naming the port, the problem and the fix. */
export function tapSetupError(url: string, cfg: TapConfig, err: NodeJS.ErrnoException & { syscall?: string }): LanpartyError {
  const what = `port ${url}`;
  const persistent = `sudo ip tuntap add mode tap user ${userName()} name ${cfg.name}`;
  if (err instanceof LanpartyError) return new LanpartyError(err.code, `${what}: ${err.message}`, { cause: err });
  const via = err.syscall ? `${err.syscall} ${err.code}` : String(err.code);
  switch (err.code) {
    case 'EPERM':
    case 'EACCES':
      if (err.syscall === 'open') {
        return new LanpartyError('LP_ERR_PERMISSION', `${what}: permission denied opening /dev/net/tun (${via}); make it readable and writable by you (it normally is, mode 0666), or run as root`, { cause: err });
      }
      if (err.syscall === 'TUNSETIFF') {
        return new LanpartyError('LP_ERR_PERMISSION', cfg.create
          ? `${what}: permission denied creating TAP ${cfg.name} (${via}); run as root or with CAP_NET_ADMIN, or have an administrator create a persistent TAP you own once (${persistent}) and use tap://${cfg.name}`
          : `${what}: permission denied attaching TAP ${cfg.name} (${via}): it belongs to another user; recreate it for you (sudo ip link del ${cfg.name}; ${persistent}) or run as its owner`, { cause: err });
      }
      return new LanpartyError('LP_ERR_PERMISSION', `${what}: permission denied configuring ${cfg.name} (${via}); setting the address or MTU needs root or CAP_NET_ADMIN (or drop address= and mtu= and set them once with ip addr / ip link)`, { cause: err });
    case 'ENODEV':
      return new LanpartyError('LP_ERR_NO_DEVICE', `${what}: there is no interface ${cfg.name}; create a persistent TAP once (${persistent}) or, as root, use tap://${cfg.name}?create=1`, { cause: err });
    case 'ENOENT':
      return new LanpartyError('LP_ERR_NO_DEVICE', `${what}: /dev/net/tun does not exist (${via}); the kernel needs TUN/TAP support (CONFIG_TUN), or create the node: mknod /dev/net/tun c 10 200`, { cause: err });
    case 'EBUSY':
      return new LanpartyError('LP_ERR_ADDR_IN_USE', `${what}: TAP ${cfg.name} is already attached to another program (${via}), e.g. a QEMU -netdev tap or another lanparty; stop it or pick another name`, { cause: err });
    case 'EINVAL':
      return new LanpartyError('LP_ERR_CONFIG', `${what}: ${cfg.name} exists but is not a TAP device (${via}); pick another name or delete it (ip link del ${cfg.name})`, { cause: err });
    default:
      return new LanpartyError('LP_ERR_INTERNAL', `${what}: ${err.message}`, { cause: err });
  }
}

export class TapTransport implements Transport {
  readonly kind: PortKind = 'tap';
  private readonly port: TapPort;
  private readonly log: Logger;
  private readonly onBatchBound: (count: number) => void;
  private state: TapState = 'absent';
  private ifindex = 0;
  private started = false;
  /** Receive memory shared by every attach of this device (see attach). */
  private rxSlab: Buffer | null = null;
  /** The last reattach failure logged, so a retry every second logs only changes. */
  private lastRetryError = '';

  constructor(readonly url: string, private readonly cfg: TapConfig, private readonly ctx: TransportContext) {
    this.log = ctx.log.child(`port ${cfg.name}`);
    this.port = new TapPort(`tap ${cfg.name}`, ctx.maxFrameBytes, cfg.name);
    this.onBatchBound = this.onBatch.bind(this);
  }

  /** Attaches (or creates) the device; throws LanpartyError naming the port and the fix. */
  async start(): Promise<void> {
    try {
      this.attach();
    } catch (err) {
      throw tapSetupError(this.url, this.cfg, err as NodeJS.ErrnoException);
    }
    this.started = true;
    this.ctx.sink.addPort(this.port);
    const addrs = hostAddresses(this.cfg.name);
    this.log.info(`attached (ifindex ${this.ifindex}, ${this.state}${addrs.length ? ', host ' + addrs.join(' ') : ', no IPv4 address'})`);
  }

  /** Opens the device, configures it in create mode, and starts reading. Throws errno errors. */
  private attach(): void {
    // One receive slab for every attach: a device that is gone is retried each second.
    this.rxSlab ??= Buffer.alloc(tapRxSlabBytes(this.ctx.maxFrameBytes));
    const dev = openTapDevice({ name: this.cfg.name, create: this.cfg.create, maxFrameBytes: this.ctx.maxFrameBytes, rxSlab: this.rxSlab });
    try {
      if (this.cfg.create) {
        configureInterface(dev.name, { address: this.cfg.address, prefixLength: this.cfg.prefixLength, mtuBytes: this.cfg.mtuBytes, up: true });
      }
      dev.start(this.onBatchBound);
    } catch (err) {
      dev.close();
      throw err;
    }
    this.port.dev = dev;
    this.port.gone = false;
    this.ifindex = dev.ifindex;
    this.state = this.adminUp() ? 'up' : 'down';
    this.port.sendable = this.state === 'up';
  }

  private adminUp(): boolean {
    const st = interfaceState(this.cfg.name);
    return st !== null && (st.flags & IFF_UP) !== 0;
  }

  private onBatch(count: number): void {
    if (count < 0) {
      // EBADFD from read(), or EBADF from libuv, which reports EPOLLERR that way: the tun was
      // detached from our fd, i.e. the device was deleted.
      this.detach(`reading failed with ${errnoName(-count)}: deleted or detached`);
      return;
    }
    const rx = this.port.dev!.rx;
    const sink = this.ctx.sink;
    const port = this.port;
    for (let i = 0; i < count; i++) sink.input(port, rx.bufs[i], 0, rx.lengths[i]);
  }

  /** Closes the fd after the device went away; frames to the port are dropped until reattached. */
  private detach(why: string): void {
    const dev = this.port.dev;
    if (dev === null) return;
    this.port.dev = null;
    this.port.sendable = false;
    dev.close();
    this.state = 'absent';
    this.lastRetryError = '';
    this.log.info(`device gone (${why}); the rest of the LAN keeps running; ${this.cfg.create ? 'creating it again' : `reattaching when ${this.cfg.name} exists again`}`);
  }

  tick(_nowMs: number): void {
    if (!this.started || this.state === 'closed') return;
    if (this.port.dev !== null) {
      const st = interfaceState(this.cfg.name);
      if (this.port.gone || st === null || st.ifindex !== this.ifindex) {
        this.detach(this.port.gone ? 'a write found it deleted' : st === null ? `interface ${this.cfg.name} vanished` : 'it was replaced by a new device');
      } else {
        const next: TapState = (st.flags & IFF_UP) !== 0 ? 'up' : 'down';
        if (next !== this.state) {
          this.state = next;
          this.port.sendable = next === 'up';
          this.log.info(next === 'up' ? 'interface up: frames flow again' : 'interface set down: frames to it are dropped (port-down) until it is up');
        }
        return;
      }
    }
    // Absent: reattach when the name exists again (attach mode), or create it (create mode).
    if (!this.cfg.create && interfaceState(this.cfg.name) === null) return;
    try {
      this.attach();
      this.log.info(`reattached (ifindex ${this.ifindex}, ${this.state})`);
    } catch (err) {
      const msg = tapSetupError(this.url, this.cfg, err as NodeJS.ErrnoException).message;
      if (msg !== this.lastRetryError) this.log.error(`${msg}; retrying every second`);
      this.lastRetryError = msg;
    }
  }

  async close(): Promise<void> {
    if (this.started) this.ctx.sink.removePort(this.port);
    this.started = false;
    this.state = 'closed';
    this.port.sendable = false;
    const dev = this.port.dev;
    this.port.dev = null;
    if (dev !== null) dev.close();
  }

  /** Guests do not join through a TAP; the host does. `lanparty up` prints hostAddresses instead. */
  qemuNetdev(_guest: string, _netdevId: string): string | null {
    return null;
  }

  /** The device's current state. */
  deviceState(): TapState {
    return this.state;
  }

  /** The interface name. */
  get deviceName(): string {
    return this.cfg.name;
  }

  status(): TransportStatus {
    const addrs = this.state === 'closed' ? [] : hostAddresses(this.cfg.name);
    return {
      url: this.url,
      kind: this.kind,
      state: this.state,
      address: addrs.length ? `${this.cfg.name} ${addrs.join(' ')}` : this.cfg.name,
      portCount: this.state === 'closed' ? 0 : 1,
      native: true,
    };
  }
}
