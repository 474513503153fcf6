/**
 * The native addon's loader: the only module that loads lanparty_native.node (a local build in
 * native/build/Release or the package's prebuild, found by native-path.ts)
 * (docs/data-path.md). It checks the addon's ABI version against ADDON_ABI_VERSION and refuses an
 * addon built from other sources (lanparty then runs on the JS path and says why). Also the
 * addon-wide controls: busy polling, the unix backlog's bounds, the peer links' AEAD.
 */
import { createRequire } from 'node:module';
import type { DgramAddress } from './types.js';
import type { InterfaceState, TapWriteResult } from './types.js';
import { locateNativeAddon } from './native-path.js';

/** The addon's StreamReader object. */
export interface NativeStreamReader {
  start(cb: (n: number) => number): void;
  pause(): void;
  resume(): void;
  close(): void;
  useSlab(slab: Buffer): void;
}


export interface NativeHandle {
  open(o: NativeOpenOptions): void;
  localAddress(): DgramAddress;
  ignoreSource(host: string, port: number): boolean;
  /** nets: [network, mask, ...]; exact: [address, port, ...] (unsigned 32-bit, host order). */
  acceptSources(nets: number[], exact: number[]): boolean;
  peerIdInet(host: string, port: number): number;
  peerIdUnix(path: string): number;
  peerAddress(id: number): DgramAddress | null;
  releasePeer(id: number): boolean;
  /** report: Int32Array(evictedMax + 1), see PeerTable in the addon. */
  enablePeerEviction(report: Int32Array): void;
  start(cb: (count: number) => void): void;
  copyIn(buf: Buffer, off: number, len: number, at: number): boolean;
  /** This socket's rx slab id for other sockets' txSrcs; 0 when the addon's registry is full. */
  rxSlabId(): number;
  flush(count: number): number;
  close(): void;
}

export interface NativeModule {
  BatchSocket: new (
    rxSlab: Buffer, slotBytes: number, lengths: Int32Array, peers: Int32Array,
    txSlab: Buffer, txOffs: Int32Array, txLens: Int32Array, txPeers: Int32Array, txSrcs: Int32Array, counters: Float64Array,
  ) => NativeHandle;
  TapDevice: new (rxSlab: Buffer, slotBytes: number, lengths: Int32Array, counters: Float64Array) => NativeTapHandle;
  StreamReader: new (fd: number, slab: Buffer) => NativeStreamReader;
  configureInterface(name: string, address: string, prefixLength: number, mtuBytes: number, up: boolean): void;
  interfaceState(name: string): InterfaceState | null;
  /** Present when the addon was built with OpenSSL's headers (Node ships them). */
  aeadSeal?: NativeAead['seal'];
  aeadOpen?: NativeAead['open'];
  /** The per-peer unix send backlog's bounds (kBacklogDatagrams, kBacklogBytes). */
  backlogDatagrams: number;
  backlogBytes: number;
  /** Evicted peer ids reported at once, at most (kEvictedMax). */
  evictedMax: number;
  /** Sets the busy-poll time and budget when given; returns the state (see busyPollState). */
  setBusyPoll(us?: number, budgetPercent?: number): number[];
  /** The busy-poll policy alone, on a clock the caller steps (see busyPollPolicy). */
  BusyPollPolicy: new () => NativeBusyPollPolicy;
  /** The addon's interface version (kAbiVersion in native/module.cc); see ADDON_ABI_VERSION. */
  abiVersion: number;
}

export interface NativeTapHandle {
  open(name: string, create: boolean): { name: string; ifindex: number };
  start(cb: (count: number) => void): void;
  write(buf: Buffer, off: number, len: number): TapWriteResult;
  close(): void;
}

export interface NativeOpenOptions {
  kind: 'udp4' | 'unix';
  host: string;
  port: number;
  path: string;
  reuseAddr: boolean;
  rcvbufBytes: number;
  sndbufBytes: number;
  mcastGroup: string | null;
  mcastInterface: string;
  mcastTtl: number;
  mcastLoop: boolean;
  mcastJoin: boolean;
  noUdpChecksum: boolean;
  udpGso: boolean;
  /** Unix: a reader's deep backlog may pause this socket (step 5); off unless asked for. */
  flowControl: boolean;
  maxPeers: number;
}

/**
 * The addon interface this file was written against: the exports, their arguments, the counter
 * and result indexes. native/module.cc exports the same number as `abiVersion`; both change
 * together whenever one side changes what the other relies on. An addon with another number
 * (built from other sources) is not used.
 */
export const ADDON_ABI_VERSION = 2;

/**
 * Why the addon at `path`, exporting `abiVersion`, cannot be used with this file (naming the file,
 * both versions and the fix), or null when the versions agree.
 */
export function abiMismatch(path: string, abiVersion: unknown): string | null {
  if (abiVersion === ADDON_ABI_VERSION) return null;
  const found = typeof abiVersion === 'number' ? `ABI version ${abiVersion}` : 'no ABI version';
  return `native addon ${path} has ${found}, this lanparty needs ABI version ${ADDON_ABI_VERSION}; rebuild it with npm run build:native`;
}

let nativeModule: NativeModule | null = null;
let loadError: string | null = null;
let loadAttempted = false;

export function loadNative(): NativeModule | null {
  if (loadAttempted) return nativeModule;
  loadAttempted = true;
  if (process.env.LANPARTY_NO_NATIVE === '1') {
    loadError = 'native addon disabled by LANPARTY_NO_NATIVE=1';
    return null;
  }
  const found = locateNativeAddon();
  if (found.path === null) {
    loadError = `native addon not built (looked for ${found.looked}); build it with npm run build:native (needs g++, make, python3)`;
    return null;
  }
  const path = found.path;
  try {
    const m = createRequire(import.meta.url)(path) as NativeModule;
    loadError = abiMismatch(path, m.abiVersion);
    if (loadError !== null) return null;
    nativeModule = m;
    return nativeModule;
  } catch (err) {
    loadError = `native addon ${path} failed to load: ${(err as Error).message}; rebuild it with npm run build:native`;
    return null;
  }
}

export interface BusyPollState {
  /** Microseconds of polling after the last frame before the thread goes back to libuv; 0: off. */
  us: number;
  /** Share of one core (percent) that the idle part of the spinning may use, on average. */
  budgetPercent: number;
  /** Spins started (one per libuv wakeup that delivered frames, while the budget lasts). */
  spins: number;
  /** Frames read while spinning: each arrived without waking the process. */
  frames: number;
  /** Microseconds spent spinning without frames: the CPU it cost. */
  idleUs: number;
  /** Wakeups that slept at once because the budget was spent. */
  skipped: number;
  /** Wakeups that slept at once under a load: frames came faster than `maxRate`, or the wakeup read more than `maxBatch`. */
  loaded: number;
  /** Frames a second above which it does not spin (fixed in the addon). */
  maxRate: number;
  /** Frames a second through the native sockets, TAPs and stream readers over the last measured window (20 ms, ended by a frame). */
  rate: number;
  /** Frames read at once above which it does not spin, and after which a spin ends (fixed in the addon). */
  maxBatch: number;
}

function busyState(v: number[]): BusyPollState {
  return { us: v[0], budgetPercent: v[1], spins: v[2], frames: v[3], idleUs: v[4], skipped: v[5], loaded: v[6], maxRate: v[7], rate: v[8], maxBatch: v[9] };
}

/**
 * Busy polling of the native sockets and TAP devices (see BusySpin in the addon): after a wakeup
 * that delivered frames, keep reading for `us` microseconds since the last frame before sleeping
 * again, so the reply to a frame just forwarded is read without a scheduler wake-up; the idle
 * part of it may use `budgetPercent` of one core on average, and it does not spin at all under a
 * load (frames faster than the addon's `maxRate`, or more than `maxBatch` at once). us 0 turns it
 * off. Returns null when the addon is not loaded (the JS path has no such loop).
 */
export function setBusyPoll(us: number, budgetPercent?: number): BusyPollState | null {
  const m = loadNative();
  if (m === null) return null;
  return busyState(budgetPercent === undefined ? m.setBusyPoll(us) : m.setBusyPoll(us, budgetPercent));
}

/** How much one unix datagram peer's send backlog holds (whichever is reached first); null without the addon. */
export function unixBacklogLimits(): { datagrams: number; bytes: number } | null {
  const m = loadNative();
  return m ? { datagrams: m.backlogDatagrams, bytes: m.backlogBytes } : null;
}

interface NativeBusyPollPolicy {
  configure(us: number | undefined, budgetPercent: number | undefined, nowUs: number): number[];
  decide(nowUs: number, frames: number): boolean;
  charge(idleUs: number): void;
  state(): number[];
}

/**
 * The addon's busy-poll policy on its own, with time passed in (µs on any clock the caller
 * steps), for tests: the same rate window, batch bound and CPU budget that decide whether a
 * wakeup spins, without sockets or a real spin. decide(nowUs, frames) is what a wakeup at nowUs
 * that delivered `frames` would do (true: spin; the refusals count in `loaded` and `skipped`), and
 * charge(idleUs) bills a spin's idle time to the budget. Null without the addon.
 */
export interface BusyPollPolicy {
  configure(us: number | undefined, budgetPercent: number | undefined, nowUs: number): BusyPollState;
  decide(nowUs: number, frames: number): boolean;
  charge(idleUs: number): void;
  state(): BusyPollState;
}

export function busyPollPolicy(): BusyPollPolicy | null {
  const m = loadNative();
  if (m === null) return null;
  const p = new m.BusyPollPolicy();
  return {
    configure: (us, budgetPercent, nowUs) => busyState(p.configure(us, budgetPercent, nowUs)),
    decide: (nowUs, frames) => p.decide(nowUs, frames),
    charge: (idleUs) => p.charge(idleUs),
    state: () => busyState(p.state()),
  };
}

/** The busy-poll setting and its counts, or null without the addon. */
export function busyPollState(): BusyPollState | null {
  const m = loadNative();
  if (m === null) return null;
  return busyState(m.setBusyPoll());
}

/** True when the native recvmmsg/sendmmsg addon is loaded (and not disabled by LANPARTY_NO_NATIVE=1). */
export function nativeAvailable(): boolean {
  return loadNative() !== null;
}

/**
 * ChaCha20-Poly1305 with WireGuard's nonce (32 zero bits, then the 64-bit little-endian counter
 * as lo/hi halves), done in the addon with one reused OpenSSL context per direction: no object
 * and no Buffer per packet (node:crypto builds a Cipheriv per packet, which costs more than the
 * cipher). Both return bytes written, or -1 (a bad tag on open, or arguments out of range).
 */
export interface NativeAead {
  /** Seals src[srcOff, +srcLen) plus (padded - srcLen) zero bytes into dst at dstOff, tag after: padded + 16. */
  seal(key: Buffer, ctrLo: number, ctrHi: number, src: Buffer, srcOff: number, srcLen: number, padded: number, dst: Buffer, dstOff: number): number;
  /** Opens ciphertext + tag src[srcOff, +srcLen) into dst at dstOff: srcLen - 16. */
  open(key: Buffer, ctrLo: number, ctrHi: number, src: Buffer, srcOff: number, srcLen: number, dst: Buffer, dstOff: number): number;
}

/** The addon's AEAD, or null (no addon, built without OpenSSL headers, or LANPARTY_NATIVE_AEAD=0). */
export function nativeAead(): NativeAead | null {
  const m = loadNative();
  if (m === null || !m.aeadSeal || !m.aeadOpen || process.env.LANPARTY_NATIVE_AEAD === '0') return null;
  return { seal: m.aeadSeal, open: m.aeadOpen };
}

/** Why the native addon is not in use, or null when it is. */
export function nativeLoadError(): string | null {
  loadNative();
  return loadError;
}
