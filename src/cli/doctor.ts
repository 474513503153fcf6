/**
 * `lanparty doctor`: asks the running lanparty to run every check (see daemon/doctor) and prints
 * each finding with its fix; --json for scripts. Exit code 1 when there is anything to fix.
 * When no lanparty answers, that is itself the finding.
 */
import { parseArgs } from 'node:util';
import { request } from '../control/index.js';
import { LanpartyError } from '../util/index.js';
import type { DoctorReport } from '../daemon/index.js';
import { defaultControlPath } from './status.js';

export const DOCTOR_HELP = `Usage: lanparty doctor [--json] [--control PATH]

Check the running LAN and explain what would stop guests from talking, each finding with its fix:
multicast membership on the wrong interface, strict rp_filter, firewall rules dropping lanparty's
ports, frames bigger than the path MTU, duplicate MACs, duplicate IPv4 addresses, one DHCP client
identifier on several MACs, QEMU guests pointing at a port nobody listens on, unixgram ports
whose readers' queues dropped datagrams (net.unix.max_dgram_qlen), and guests on this host whose
udp socket dropped what lanparty sent them (its receive buffer).
Exit code 0 when there is nothing to fix, 1 when there are findings.

Options:
      --json          machine-readable report
      --control PATH  control socket (default $XDG_RUNTIME_DIR/lanparty/control.sock)
  -h, --help          this help
`;

export function formatDoctor(r: DoctorReport): string {
  const out: string[] = [];
  for (const c of r.checks) {
    if (c.error !== null) out.push(`? ${c.name}: could not check (${c.error})`);
    else if (c.findings.length === 0) out.push(`ok ${c.name}: ${c.description}`);
    for (const f of c.findings) {
      out.push(`X ${c.name}: ${f.problem}`);
      out.push(`    fix: ${f.fix}`);
    }
  }
  out.push('');
  out.push(r.findings.length === 0 ? 'Nothing to fix.' : `${r.findings.length} thing${r.findings.length === 1 ? '' : 's'} to fix.`);
  return out.join('\n') + '\n';
}

export async function doctor(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' }, control: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true });
  if (values.help) {
    process.stdout.write(DOCTOR_HELP);
    return 0;
  }
  const control = values.control ?? defaultControlPath();
  let report: DoctorReport;
  try {
    report = (await request(control, 'doctor')) as DoctorReport;
  } catch (err) {
    if (!(err instanceof LanpartyError) || err.code === 'LP_ERR_PERMISSION') throw err;
    report = {
      checks: [{ name: 'lanparty-running', description: 'a lanparty answers on the control socket', findings: [], error: null }],
      findings: [{ check: 'lanparty-running', problem: err.message, fix: 'start it with lanparty up (or pass --control PATH of the one you started)' }],
    };
    report.checks[0].findings = report.findings;
  }
  process.stdout.write(values.json ? JSON.stringify(report, null, 2) + '\n' : formatDoctor(report));
  return report.findings.length > 0 ? 1 : 0;
}
