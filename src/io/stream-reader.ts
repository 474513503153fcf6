/**
 * Stream ports' reads in the addon (StreamReader there): one reused slab per connection, no
 * Buffer per read. Null where the addon cannot: Node reads the socket then.
 */
import { loadNative, type NativeStreamReader } from './addon.js';


/**
 * Reads a connected stream socket in the addon (StreamReader there) into `slab`, on a dup of the
 * socket's fd: start(cb) calls cb(n) with n > 0 bytes at slab[0, n) for every read, and cb returns
 * how many frames they completed (busy polling's count); cb(0) at end of stream, cb(-errno) on an
 * error, once. The net.Socket must never read (open it paused: pauseOnConnect, or pause() before
 * it connects); it still writes, and closing it is the caller's business.
 */
export interface StreamReader {
  /** What the reader reads into: callback(n) means bytes [0, n) of it are new. */
  readonly slab: Buffer;
  start(cb: (n: number) => number): void;
  pause(): void;
  resume(): void;
  close(): void;
  /**
   * Reads into a new slab (of `bytes`, else the current size) from the next read on, and returns
   * it: call it (from the callback too) when something keeps a view of the current one, such as
   * a socket write that did not complete, or to read more at once.
   */
  readonly renewSlab: (bytes?: number) => Buffer;
}

/**
 * A native reader for `sock` (see StreamReader), or null: no addon, no fd,
 * LANPARTY_STREAM_READER=0, or no fd left to dup (then Node reads the socket).
 */
export function openStreamReader(sock: object, slabBytes: number): StreamReader | null {
  const m = streamReaderAvailable() ? loadNative() : null;
  // net.Socket has no public fd; its libuv handle (TCP or Pipe wrap) has one on Unix.
  const fd = (sock as { _handle?: { fd?: unknown } | null })._handle?.fd;
  if (m === null || typeof fd !== 'number' || fd < 0) return null;
  // Allocated here, once the addon will read: a connection Node reads needs no slab of its own.
  let native: NativeStreamReader;
  let slab = Buffer.allocUnsafe(slabBytes);
  try {
    native = new m.StreamReader(fd, slab);
  } catch {
    return null;  // dup failed (EMFILE: out of file descriptors): Node reads this one
  }
  return {
    get slab() { return slab; },
    start: (cb) => native.start(cb),
    pause: () => native.pause(),
    resume: () => native.resume(),
    close: () => native.close(),
    renewSlab: (bytes = slab.length) => {
      slab = Buffer.allocUnsafe(bytes);
      native.useSlab(slab);
      return slab;
    },
  };
}

/** True when openStreamReader can give stream sockets to the addon (see there). */
export function streamReaderAvailable(): boolean {
  return process.env.LANPARTY_STREAM_READER !== '0' && loadNative() !== null;
}
