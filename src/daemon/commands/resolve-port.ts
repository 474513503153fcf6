/**
 * Finds a switch port from what a user typed: its id ("3"), its exact name
 * ("udp 127.0.0.1:40001"), or a part of its name that matches exactly one port.
 * Errors name the field (`field`), the value and the ports there are.
 */
import type { Port, Switch } from '../../switch/index.js';
import { LanpartyError } from '../../util/index.js';

/** What port lookup reads of the daemon: the switch's ports. */
export interface PortsHost {
  readonly sw: Pick<Switch, 'ports'>;
}

export function portList(d: PortsHost): string {
  return d.sw.ports.map((p) => `${p.id} "${p.name}"`).join(', ') || '(none yet: a datagram guest becomes a port when it first sends)';
}

export function resolvePort(d: PortsHost, spec: unknown, field: string): Port {
  const text = String(spec).trim();
  const ports = d.sw.ports;
  if (/^\d+$/.test(text)) {
    const p = ports.find((x) => x.id === Number(text));
    if (p) return p;
    throw new LanpartyError('LP_ERR_USAGE', `${field} ${text}: no port with that id; ports: ${portList(d)}`);
  }
  const exact = ports.find((x) => x.name === text);
  if (exact) return exact;
  const partial = ports.filter((x) => x.name.includes(text));
  if (partial.length === 1) return partial[0];
  if (partial.length > 1) throw new LanpartyError('LP_ERR_USAGE', `${field} "${text}": matches ${partial.length} ports (${partial.map((p) => p.id).join(', ')}); give the id or the full name`);
  throw new LanpartyError('LP_ERR_USAGE', `${field} "${text}": no such port; ports: ${portList(d)}`);
}
