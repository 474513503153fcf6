/**
 * Reassembles QEMU's stream framing: each frame is a 4-byte big-endian length (frame bytes only)
 * followed by the frame (QEMU net/stream.c, net_fill_rstate in net/net.c). A state machine with two
 * states, after ws's receiver: frames wholly inside one chunk are handed on as views into the
 * chunk; only a frame split across chunks is copied into a buffer of its own.
 *
 * Lengths: 0 is an empty frame (QEMU would deliver it; we count it and skip it). A length above
 * `maxFrameBytes` is a protocol error: the connection must be closed (QEMU does the same when a
 * frame overflows NET_BUFSIZE).
 */

const STATE_LENGTH = 0;
const STATE_BODY = 1;

export type FrameHandler = (buf: Buffer, off: number, len: number) => void;
export type FramerError = 'bad-length';

export class StreamFramer {
  private state = STATE_LENGTH;
  private readonly header = Buffer.alloc(4);
  private headerFill = 0;
  private body: Buffer | null = null;
  private bodyFill = 0;
  private bodyLen = 0;
  /** Bytes of a frame begun but not finished (0 when between frames). */
  pendingBytes = 0;
  emptyFrames = 0;
  error: FramerError | null = null;
  /** The length that caused `error`, for the log line. */
  badLength = 0;

  constructor(private readonly maxFrameBytes: number, private readonly onFrame: FrameHandler) {}

  /** True when the stream stopped at a frame boundary. */
  atBoundary(): boolean {
    return this.state === STATE_LENGTH && this.headerFill === 0;
  }

  /**
   * Feeds one chunk: chunk[0, n). Returns false after a protocol error (then `error` is set; stop
   * feeding). Frames wholly inside it are handed on as views, valid only during the call.
   */
  push(chunk: Buffer, n: number = chunk.length): boolean {
    let pos = 0;
    while (pos < n) {
      if (this.state === STATE_LENGTH) {
        let len: number;
        if (this.headerFill === 0 && n - pos >= 4) {
          len = chunk.readUInt32BE(pos);
          pos += 4;
        } else {
          const take = Math.min(4 - this.headerFill, n - pos);
          chunk.copy(this.header, this.headerFill, pos, pos + take);
          this.headerFill += take;
          pos += take;
          if (this.headerFill < 4) {
            this.pendingBytes = this.headerFill;
            return true;
          }
          this.headerFill = 0;
          len = this.header.readUInt32BE(0);
        }
        if (len === 0) {
          this.emptyFrames++;
          this.pendingBytes = 0;
          continue;
        }
        if (len > this.maxFrameBytes) {
          this.error = 'bad-length';
          this.badLength = len;
          return false;
        }
        if (n - pos >= len) {
          // Common case: the whole frame is in this chunk; hand on a view, no copy.
          this.pendingBytes = 0;
          this.onFrame(chunk, pos, len);
          pos += len;
          continue;
        }
        // The frame spans chunks: copy it into a buffer of its own.
        this.body = Buffer.allocUnsafe(len);
        this.bodyLen = len;
        this.bodyFill = 0;
        this.state = STATE_BODY;
      }
      const body = this.body!;
      const take = Math.min(this.bodyLen - this.bodyFill, n - pos);
      chunk.copy(body, this.bodyFill, pos, pos + take);
      this.bodyFill += take;
      pos += take;
      this.pendingBytes = 4 + this.bodyFill;
      if (this.bodyFill === this.bodyLen) {
        this.state = STATE_LENGTH;
        this.body = null;
        this.pendingBytes = 0;
        this.onFrame(body, 0, this.bodyLen);
      }
    }
    return true;
  }
}
