/**
 * Client side of the `capture` control command, shared by `lanparty capture` and `lanparty dump`:
 * sends the request, reads the JSON reply line, then feeds the binary records that follow to
 * `onRecord`. Stops after `count` frames, after `durationS`, on SIGINT/SIGTERM, or when lanparty
 * goes away; resolves with what was seen.
 */
import type * as net from 'node:net';
import { connectControl, type ControlReply } from '../control/index.js';
import { LanpartyError, type ErrorCode } from '../util/index.js';
import { RecordReader, type StreamRecord } from '../daemon/index.js';

export interface CaptureRequest {
  control: string;
  ports: string[];
  macs: string[];
  /** Stop after this many frames; 0 = no limit. */
  count: number;
  /** Stop after this many seconds; 0 = no limit. */
  durationS: number;
  /** Command name for messages ("capture", "dump"). */
  label: string;
}

export interface CaptureSession {
  socket: net.Socket;
  /** Resolves when the capture ends: frames delivered and frames lanparty dropped for us. */
  done: Promise<{ frames: number; dropped: number; reason: string }>;
  stop(reason: string): void;
}

/** Starts the capture; `onRecord` returns false to ask for a pause (the caller resumes the socket). */
export async function startCaptureStream(req: CaptureRequest, onRecord: (r: StreamRecord) => void): Promise<CaptureSession> {
  const sock = await connectControl(req.control);
  let frames = 0;
  let dropped = 0;
  let stopped = false;
  let resolveDone!: (v: { frames: number; dropped: number; reason: string }) => void;
  let rejectDone!: (e: Error) => void;
  const done = new Promise<{ frames: number; dropped: number; reason: string }>((res, rej) => { resolveDone = res; rejectDone = rej; });
  let reason = 'lanparty closed the connection';
  const stop = (why: string) => {
    if (stopped) return;
    stopped = true;
    reason = why;
    sock.destroy();
  };
  const reader = new RecordReader();
  let replied = false;
  let pending = Buffer.alloc(0);
  const replyReady = new Promise<void>((res, rej) => {
    sock.on('data', (chunk: Buffer) => {
      if (stopped) return;
      if (!replied) {
        pending = Buffer.concat([pending, chunk]);
        const nl = pending.indexOf(10);
        if (nl < 0) return;
        const reply = JSON.parse(pending.subarray(0, nl).toString('utf8')) as ControlReply;
        if (!reply.ok) {
          rej(new LanpartyError(reply.error.code as ErrorCode, reply.error.message));
          stop('error');
          return;
        }
        replied = true;
        res();
        chunk = pending.subarray(nl + 1);
        if (chunk.length === 0) return;
      }
      try {
        reader.push(chunk, (r) => {
          if (stopped) return;
          if (r.type === 'frame') {
            frames++;
            onRecord(r);
            if (req.count > 0 && frames >= req.count) stop(`${req.count} frames`);
          } else {
            if (r.type === 'stats') dropped = r.stats.dropped;
            onRecord(r);
          }
        });
      } catch (err) {
        rejectDone(err as Error);
        stop('error');
      }
    });
  });
  sock.on('close', () => {
    if (!replied) return;
    resolveDone({ frames, dropped, reason });
  });
  sock.on('error', () => {});
  sock.write(JSON.stringify({ id: 1, cmd: 'capture', args: { ports: req.ports, macs: req.macs } }) + '\n');
  const closedEarly = new Promise<never>((_, rej) => sock.once('close', () => { if (!replied) rej(new LanpartyError('LP_ERR_CONTROL', `control socket ${req.control}: closed before replying`)); }));
  await Promise.race([replyReady, closedEarly]);
  let timer: NodeJS.Timeout | undefined;
  if (req.durationS > 0) timer = setTimeout(() => stop(`${req.durationS} s`), req.durationS * 1000);
  // Handlers before the line below: whoever reads it may interrupt at once (as up.ts does).
  const onSignal = () => stop('interrupted');
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // Like dumpcap's "Capturing on ...": tells people (and tests) that frames now flow.
  process.stderr.write(`lanparty ${req.label}: capturing${req.ports.length ? ' on ports ' + req.ports.join(', ') : ' on every port'}${req.macs.length ? ', MACs ' + req.macs.join(', ') : ''}\n`);
  void done.finally(() => {
    if (timer) clearTimeout(timer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }).catch(() => {});
  return { socket: sock, done, stop };
}

/** Parses a positive number flag; the error names the flag. */
export function numberFlag(name: string, text: string | undefined, opts: { integer?: boolean; min?: number } = {}): number {
  if (text === undefined) return 0;
  const n = Number(text);
  if (!Number.isFinite(n) || (opts.integer && !Number.isInteger(n)) || n < (opts.min ?? 0)) {
    throw new LanpartyError('LP_ERR_USAGE', `${name} "${text}": expected ${opts.integer ? 'a whole number' : 'a number'} of at least ${opts.min ?? 0}`);
  }
  return n;
}
