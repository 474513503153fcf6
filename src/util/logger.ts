/**
 * Logger: three levels, passed in by the owner and prefixed per component. Nothing is logged per
 * frame at info level. `NODE_DEBUG=lanparty` enables debug lines through util.debuglog.
 */
import { debuglog } from 'node:util';

export interface Logger {
  error(msg: string): void;
  info(msg: string): void;
  debug(msg: string): void;
  /** A logger whose lines start with `prefix: `. */
  child(prefix: string): Logger;
}

const nodeDebug = debuglog('lanparty');

export function createLogger(write: (line: string) => void = (l) => process.stderr.write(l + '\n'), prefix = ''): Logger {
  const p = prefix ? prefix + ': ' : '';
  return {
    error: (m) => write(`error: ${p}${m}`),
    info: (m) => write(`${p}${m}`),
    debug: (m) => nodeDebug('%s', p + m),
    child: (c) => createLogger(write, prefix ? `${prefix}: ${c}` : c),
  };
}

export const silentLogger: Logger = {
  error() {}, info() {}, debug() {},
  child() { return silentLogger; },
};

/**
 * Limits how often a line that a remote peer can trigger is logged: at most `burst` lines per
 * `intervalMs`, then one summary with the number suppressed.
 */
export class RateLimitedLog {
  private windowStartMs = 0;
  private countInWindow = 0;
  suppressed = 0;
  constructor(private readonly log: (m: string) => void, private readonly burst = 5, private readonly intervalMs = 10_000) {}
  write(nowMs: number, msg: string): void {
    if (nowMs - this.windowStartMs >= this.intervalMs) {
      if (this.suppressed > 0) this.log(`(${this.suppressed} similar lines suppressed)`);
      this.windowStartMs = nowMs;
      this.countInWindow = 0;
      this.suppressed = 0;
    }
    if (this.countInWindow < this.burst) {
      this.countInWindow++;
      this.log(msg);
    } else {
      this.suppressed++;
    }
  }
}
