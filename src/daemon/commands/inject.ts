/**
 * The `inject` control command: puts one frame onto the LAN.
 *   args: {hex: string, into?: id|name, from?: id|name}
 *   into: sent out of that port only (port.send), as if the switch forwarded it there.
 *   from: handed to the switch with that port as ingress (switch.input): learned and forwarded.
 *   neither: sent out of every port (a flood from nowhere; nothing is learned).
 * Validation errors name the field.
 */
import type { ControlServer } from '../../control/index.js';
import type { Switch } from '../../switch/index.js';
import { LanpartyError } from '../../util/index.js';
import { resolvePort } from './resolve-port.js';

/** What the inject command uses of the daemon. */
export interface InjectHost {
  readonly control: Pick<ControlServer, 'register'>;
  readonly sw: Pick<Switch, 'ports' | 'input' | 'opts' | 'forwardingPorts'>;
}

export function register(d: InjectHost): void {
  d.control.register({
    name: 'inject',
    usage: 'inject {hex: string, into?: port, from?: port}: put one frame onto the LAN',
    handler: (args) => inject(d, args),
  });
}

function inject(d: InjectHost, args: Record<string, unknown>): unknown {
  if (typeof args.hex !== 'string') throw new LanpartyError('LP_ERR_USAGE', 'inject: "hex" (the frame as hex) is missing');
  const hex = args.hex.replace(/[\s:]/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(hex)) throw new LanpartyError('LP_ERR_USAGE', 'inject: --hex is not an even number of hex digits');
  const frame = Buffer.from(hex, 'hex');
  if (frame.length < 14) throw new LanpartyError('LP_ERR_USAGE', `inject: frame is ${frame.length} bytes; an Ethernet frame needs at least 14 (destination, source, type)`);
  const max = d.sw.opts.maxFrameBytes;
  if (frame.length > max) throw new LanpartyError('LP_ERR_USAGE', `inject: frame is ${frame.length} bytes; the switch carries at most ${max} (--max-frame)`);
  if (args.into !== undefined && args.from !== undefined) throw new LanpartyError('LP_ERR_USAGE', 'inject: give --into or --from, not both');
  if (args.into !== undefined) {
    const p = resolvePort(d, args.into, '--into');
    p.send(frame, 0, frame.length);
    return { mode: 'into', port: p.id, portName: p.name, bytes: frame.length };
  }
  if (args.from !== undefined) {
    const p = resolvePort(d, args.from, '--from');
    d.sw.input(p, frame, 0, frame.length);
    return { mode: 'from', port: p.id, portName: p.name, bytes: frame.length };
  }
  // A flood goes where the switch's floods go: not out of a port the spanning tree blocks.
  const ports = d.sw.forwardingPorts();
  for (const p of ports) p.send(frame, 0, frame.length);
  return { mode: 'flood', ports: ports.map((p) => p.id), bytes: frame.length };
}
