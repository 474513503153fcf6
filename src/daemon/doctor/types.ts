/**
 * Doctor: checks that explain why a LAN does not work and what to do about it (tailscale's
 * doctor: each check is a kebab-case name plus run(); all checks run, and each reports its own
 * error without stopping the others). Checks run inside the daemon, so they see its network
 * namespace, its ports and what its taps recorded.
 */
import type { Config } from '../../config/index.js';
import type { Switch, Port } from '../../switch/index.js';
import type { Transport } from '../../transports/index.js';
import type { IpSnoop } from '../ip-snoop.js';
import type { StatusReport } from '../status.js';

export interface Finding {
  /** The check that found it. */
  check: string;
  /** What is wrong, naming the thing (port, interface, MAC, process). */
  problem: string;
  /** What to do about it. */
  fix: string;
}

/** What the doctor's taps and subscriptions collected while the daemon ran. */
export interface DoctorFacts {
  /** Largest frame (bytes) that entered each port. */
  /** MAC moves between ports, per MAC (bounded). */
  macMoves: Map<number, MacMoveHistory>;
}

export interface MacMoveHistory {
  /** Port ids in the order the MAC was seen on them, newest last (bounded). */
  ports: number[];
  portNames: Map<number, string>;
  moves: number;
  /** Moves back to a port the MAC had left: the sign of two hosts with one MAC. */
  returns: number;
  lastMs: number;
}

/** What the checks read of the daemon. */
export interface DoctorHost {
  readonly config: Pick<Config, 'ports'>;
  readonly sw: Pick<Switch, 'ports'>;
  readonly transports: readonly Transport[];
  readonly snoop: Pick<IpSnoop, 'conflicts'>;
  status(): StatusReport;
}

export interface DoctorContext {
  d: DoctorHost;
  facts: DoctorFacts;
  nowMs: number;
}

export interface Check {
  name: string;
  /** One line on what it looks at. */
  description: string;
  run(ctx: DoctorContext): Promise<Finding[]> | Finding[];
}

export interface CheckResult {
  name: string;
  description: string;
  findings: Finding[];
  /** Set when the check itself failed (it reports what it could not look at). */
  error: string | null;
}

export interface DoctorReport {
  checks: CheckResult[];
  findings: Finding[];
}
