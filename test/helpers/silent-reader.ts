/**
 * A daemon with one unixgram port whose only peer, DIR/r.sock, never reads, plus a sender bound at
 * DIR/l.sock: for tests of what happens when a unix datagram reader's queue is full (its kernel
 * queue, then lanparty's per-peer backlog, then counted drops).
 */
import * as path from 'node:path';
import { buildConfig } from '../../src/config/index.js';
import { Daemon } from '../../src/daemon/index.js';
import { silentLogger } from '../../src/util/logger.js';
import { openBatchSocketWith } from '../../src/io/index.js';
import type { SocketStats } from '../../src/io/index.js';

export interface SilentReaderLan {
  daemon: Daemon;
  /** The port's URL, as status and the doctor name it. */
  url: string;
  /** Sends n broadcast frames into the port, pausing pauseMs every `every` frames so the port's own queue keeps up. */
  send(n: number, every: number, pauseMs: number): Promise<void>;
  /** The unixgram transport's socket counters. */
  socket(): SocketStats;
  /** Frames the port toward r.sock counted as handed to its socket. */
  txFrames(): number;
  stop(): Promise<void>;
}

export async function startSilentReaderLan(dir: string): Promise<SilentReaderLan> {
  const url = `unixgram://${dir}/lp.sock?peer=${dir}/r.sock`;
  const config = buildConfig({}, { ports: [url], dhcp: false, controlSocket: path.join(dir, 'control.sock') });
  const r = await openBatchSocketWith('native', { kind: 'unix', bind: { path: `${dir}/r.sock` } }); // never started: never reads
  const l = await openBatchSocketWith('native', { kind: 'unix', bind: { path: `${dir}/l.sock` } });
  const daemon = new Daemon(config, silentLogger);
  await daemon.start();
  const to = l.peerId({ kind: 'unix', path: `${dir}/lp.sock` });
  const frame = Buffer.alloc(100);
  Buffer.from('ffffffffffff020000000001', 'hex').copy(frame); // broadcast from 02:00:00:00:00:01
  return {
    daemon,
    url,
    async send(n, every, pauseMs) {
      for (let i = 0; i < n; i++) {
        frame.writeUInt32BE(i, 14);
        l.send(to, frame, 0, frame.length);
        if (i % every === every - 1) await new Promise((res) => setTimeout(res, pauseMs));
      }
    },
    socket: () => daemon.status().transports.find((t) => t.kind === 'unixgram')!.socket!,
    txFrames: () => daemon.status().ports.find((p) => p.name.endsWith('r.sock'))!.txFrames,
    async stop() {
      await daemon.stop();
      l.close();
      r.close();
    },
  };
}
