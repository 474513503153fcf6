/**
 * The `doctor` control command and what it needs to watch while the daemon runs: the MAC moves the
 * switch publishes (bounded to MAX_TRACKED_MACS MACs, the one that moved least recently goes, and
 * MAX_PORT_HISTORY ports each). The largest frame per port comes from the
 * port counters (rxLargestBytes), so the doctor adds nothing to the per-frame path.
 */
import type { ControlServer } from '../../control/index.js';
import { type Port, macMoveChannel } from '../../switch/index.js';
import { runDoctor, type DoctorFacts, type DoctorHost, type MacMoveHistory } from '../doctor/index.js';

const MAX_TRACKED_MACS = 1024;
const MAX_PORT_HISTORY = 16;

/** What the doctor command uses of the daemon: what the checks read, plus registration and a stop hook. */
export interface DoctorCommandHost extends DoctorHost {
  readonly control: Pick<ControlServer, 'register'>;
  onStop(fn: () => void): void;
}

export function register(d: DoctorCommandHost): void {
  const facts: DoctorFacts = { macMoves: new Map() };
  // The channel is process-wide: keep only moves between this daemon's ports.
  const onMove = (m: unknown) => {
    const { mac, from, to } = m as { mac: number; from: Port; to: Port };
    if (!d.sw.ports.includes(to)) return;
    let h: MacMoveHistory | undefined = facts.macMoves.get(mac);
    if (h === undefined) {
      if (facts.macMoves.size >= MAX_TRACKED_MACS) {
        for (const oldest of facts.macMoves.keys()) { facts.macMoves.delete(oldest); break; }
      }
      h = { ports: [from.id], portNames: new Map([[from.id, from.name]]), moves: 0, returns: 0, lastMs: 0 };
    } else {
      facts.macMoves.delete(mac); // re-inserted below: the Map stays in order of the last move
    }
    facts.macMoves.set(mac, h);
    if (h.ports.includes(to.id)) h.returns++;
    h.ports.push(to.id);
    if (h.ports.length > MAX_PORT_HISTORY) {
      const gone = h.ports.shift()!;
      if (!h.ports.includes(gone)) h.portNames.delete(gone);
    }
    h.portNames.set(to.id, to.name);
    h.moves++;
    h.lastMs = Date.now();
  };
  macMoveChannel.subscribe(onMove);
  d.onStop(() => macMoveChannel.unsubscribe(onMove));
  d.control.register({
    name: 'doctor',
    usage: 'doctor: run every check; findings with the fix for each',
    handler: () => runDoctor({ d, facts, nowMs: Date.now() }),
  });
}
