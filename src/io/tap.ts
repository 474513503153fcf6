/**
 * TAP devices and the interface ioctls, through the addon only: Node has no ioctl, so there is no
 * JS fallback.
 */
import { LanpartyError } from '../util/index.js';
import { loadNative, nativeLoadError, type NativeModule, type NativeTapHandle } from './addon.js';
import { DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, MAX_SLOT_BYTES } from './options.js';
import type { InterfaceState, TapWriteResult } from './types.js';


/** What TapDevice.write did with a frame; must match TxResult in native/tap_device.cc. */
export const TAP_SENT = 0;
/** The kernel would have had to wait (EAGAIN/ENOBUFS/ENOMEM): dropped. */
export const TAP_FULL = 1;
/** The interface is administratively down (EIO): dropped. */
export const TAP_DOWN = 2;
/** The device is gone (EBADFD/ENODEV/ENXIO, or closed): dropped; reopen it. */
export const TAP_GONE = 3;
/** Any other write error. */
export const TAP_ERROR = 4;

const C_TAP_RECV_ERRORS = 0;
const C_TAP_TRUNCATED = 1;
const TAP_COUNTER_COUNT = 2;

export interface TapDeviceOptions {
  /** Interface name (1-15 bytes). */
  name: string;
  /** Create the device if it does not exist (needs CAP_NET_ADMIN); else it must exist. */
  create: boolean;
  /** Largest frame received, bytes (no FCS). Longer frames are dropped and counted in `truncated`. */
  maxFrameBytes: number;
  /** Most frames read per JS call. Default 64. */
  batchSize?: number;
  /**
   * Receive memory to read into, at least tapRxSlabBytes(maxFrameBytes, batchSize) bytes. An owner
   * that reopens a device that comes and goes passes the same one every time, so no attempt
   * allocates (one open device at a time may use it). Default: a new one.
   */
  rxSlab?: Buffer;
}

/** Bytes of receive memory a TAP device needs: batchSize slots of maxFrameBytes + 1. */
export function tapRxSlabBytes(maxFrameBytes: number, batchSize = DEFAULT_BATCH_SIZE): number {
  return batchSize * (maxFrameBytes + 1);
}

/** Receive side of one wakeup. Valid only during the onBatch call; slots are reused. */
export interface TapRxBatch {
  /** rx.bufs[i] holds frame i at offset 0, rx.lengths[i] bytes. */
  bufs: Buffer[];
  lengths: Int32Array;
}

/**
 * An open TAP device: one fd from /dev/net/tun (IFF_TAP | IFF_NO_PI, O_NONBLOCK), read in batches
 * by the addon into slots allocated once, written one frame per write() straight from the caller's
 * buffer (no copy in user space). Nothing here ever blocks.
 */
export interface TapDevice {
  /** The interface name the kernel reports. */
  readonly name: string;
  /** The interface index at open; a device deleted and recreated gets a new one. */
  readonly ifindex: number;
  readonly rx: TapRxBatch;
  /**
   * Starts reading. onBatch(count) runs once per batch with count >= 1 frames in rx; it runs once
   * more with a negative count (-errno, e.g. EBADFD when the device was deleted) when reading
   * fails, after which nothing more is read: close this device and open it again later.
   */
  start(onBatch: (count: number) => void): void;
  /** Writes one frame; the caller keeps ownership of buf. Never throws, never blocks. */
  write(buf: Buffer, off: number, len: number): TapWriteResult;
  readonly stats: { recvErrors: number; truncated: number };
  close(): void;
}

class TapStats {
  private readonly c: Float64Array;
  constructor(c: Float64Array) { this.c = c; }
  get recvErrors(): number { return this.c[C_TAP_RECV_ERRORS]; }
  /** Frames longer than maxFrameBytes, dropped on receive. */
  get truncated(): number { return this.c[C_TAP_TRUNCATED]; }
}

class NativeTapDevice implements TapDevice {
  readonly name: string;
  readonly ifindex: number;
  readonly rx: TapRxBatch;
  readonly stats: TapStats;
  private readonly handle: NativeTapHandle;
  private closed = false;

  constructor(mod: NativeModule, opts: TapDeviceOptions) {
    const batchSize = opts.batchSize ?? DEFAULT_BATCH_SIZE;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_SIZE) {
      throw new RangeError(`tap ${opts.name}: batchSize ${batchSize} out of range (1..${MAX_BATCH_SIZE})`);
    }
    if (!Number.isInteger(opts.maxFrameBytes) || opts.maxFrameBytes < 14 || opts.maxFrameBytes >= MAX_SLOT_BYTES) {
      throw new RangeError(`tap ${opts.name}: maxFrameBytes ${opts.maxFrameBytes} out of range (14..${MAX_SLOT_BYTES - 1})`);
    }
    // One byte more than the largest frame, so a frame that fills the slot is known to be too long.
    const slotBytes = opts.maxFrameBytes + 1;
    if (opts.rxSlab !== undefined && opts.rxSlab.length < batchSize * slotBytes) {
      throw new RangeError(`tap ${opts.name}: rxSlab is ${opts.rxSlab.length} bytes, needs ${batchSize * slotBytes}`);
    }
    const rxSlab = opts.rxSlab ?? Buffer.alloc(batchSize * slotBytes);
    const bufs: Buffer[] = [];
    for (let i = 0; i < batchSize; i++) bufs.push(rxSlab.subarray(i * slotBytes, (i + 1) * slotBytes));
    this.rx = { bufs, lengths: new Int32Array(batchSize) };
    const counters = new Float64Array(TAP_COUNTER_COUNT);
    this.stats = new TapStats(counters);
    this.handle = new mod.TapDevice(rxSlab, slotBytes, this.rx.lengths, counters);
    const opened = this.handle.open(opts.name, opts.create); // Throws the errno error; nothing stays open.
    this.name = opened.name;
    this.ifindex = opened.ifindex;
  }

  start(onBatch: (count: number) => void): void { this.handle.start(onBatch); }

  write(buf: Buffer, off: number, len: number): TapWriteResult {
    return this.handle.write(buf, off, len);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handle.close();
  }
}

/**
 * Opens (and with `create`, creates) a TAP device. Throws the errno error from the addon (`.code`
 * EPERM, EBUSY, ENODEV for a missing device without `create`, EINVAL for a non-TAP device with
 * that name; `.syscall` "open" or "TUNSETIFF"), or LanpartyError LP_ERR_NATIVE without the addon.
 */
export function openTapDevice(opts: TapDeviceOptions): TapDevice {
  const mod = loadNative();
  if (mod === null) {
    throw new LanpartyError('LP_ERR_NATIVE', `tap ${opts.name}: TAP devices need the native addon (Node cannot ioctl /dev/net/tun): ${nativeLoadError() ?? 'unavailable'}`);
  }
  return new NativeTapDevice(mod, opts);
}

/**
 * Sets an interface's MTU, IPv4 address/prefix and IFF_UP with ioctls (needs CAP_NET_ADMIN).
 * `address` null and `mtuBytes` null leave those alone. Throws the errno error (`.syscall` names
 * the ioctl, e.g. SIOCSIFMTU) or LanpartyError LP_ERR_NATIVE.
 */
export function configureInterface(name: string, cfg: { address: string | null; prefixLength: number; mtuBytes: number | null; up: boolean }): void {
  const mod = loadNative();
  if (mod === null) throw new LanpartyError('LP_ERR_NATIVE', `interface ${name}: configuring it needs the native addon: ${nativeLoadError() ?? 'unavailable'}`);
  mod.configureInterface(name, cfg.address ?? '', cfg.prefixLength, cfg.mtuBytes ?? 0, cfg.up);
}

/**
 * The interface's current index and flags, or null when no interface has that name. Uses
 * SIOCGIFINDEX/SIOCGIFFLAGS, not /sys/class/net (which shows the namespace that mounted sysfs).
 * Throws LanpartyError LP_ERR_NATIVE without the addon.
 */
export function interfaceState(name: string): InterfaceState | null {
  const mod = loadNative();
  if (mod === null) throw new LanpartyError('LP_ERR_NATIVE', `interface ${name}: reading its state needs the native addon: ${nativeLoadError() ?? 'unavailable'}`);
  return mod.interfaceState(name);
}
