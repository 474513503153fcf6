#!/usr/bin/env node
/**
 * lanparty command line: dispatches to one file per command. Errors become one line naming what
 * is wrong and how to fix it, and an exit code per error code (see util/errors.ts).
 */
import { readFileSync } from 'node:fs';
import { LanpartyError, exitCodeFor } from '../util/index.js';
import { formatMac, macForName } from '../wire/index.js';
import { up } from './up.js';
import { status } from './status.js';
import { genkey, pubkey, genpsk } from './genkey.js';
import { capture } from './capture.js';
import { dump } from './dump.js';
import { inject } from './inject.js';
import { doctor } from './doctor.js';
import { qemu } from './qemu.js';
import { libvirt } from './libvirt.js';

const HELP = `Usage: lanparty <command> [options]

Commands:
  up            start the LAN switch (see lanparty up --help); on a shared host
                lanparty up --private (unix sockets only, in a 0700 directory)
  status        show ports, counters, MAC table and leases (--json for scripts)
  capture       write what the switch sees as pcapng (-w FILE, -w - for Wireshark)
  dump          print one line per frame (ARP, IPv4/6, ICMP, UDP, TCP, DHCP, DNS)
  inject        put a frame onto the LAN (--hex, --file, arp-request, gratuitous-arp, broadcast-ping)
  doctor        find what stops guests from talking, with the fix (--json)
  qemu NAME -- [QEMU ARGS]   run QEMU with a NIC on this LAN (stable MAC, best transport)
  libvirt NAME  print the libvirt <interface> XML that joins a domain to this LAN
  mac NAME      print the stable MAC address for a guest name
  genkey        print a new WireGuard private key (base64) for the [wg] section
  pubkey        read a private key on stdin, print its public key
  genpsk        print a new preshared key

Every command but genkey, pubkey and genpsk takes --help. Exit codes: 0 ok, 1 failure reported
by the command, 2 usage, 3 config, 4 address or path in use, 5 permission, 6 no such device,
7 native addon needed, 8 no lanparty running (control socket), 70 internal; lanparty qemu exits
with QEMU's code.

Options:
  -h, --help     this help
  -V, --version  print the version
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(HELP);
      return cmd === undefined ? 2 : 0;
    case '-V':
    case '--version':
      process.stdout.write(version() + '\n');
      return 0;
    case 'up':
      return up(rest);
    case 'status':
      return status(rest);
    case 'capture':
      return capture(rest);
    case 'dump':
      return dump(rest);
    case 'inject':
      return inject(rest);
    case 'doctor':
      return doctor(rest);
    case 'qemu':
      return qemu(rest);
    case 'libvirt':
      return libvirt(rest);
    case 'genkey':
      return genkey();
    case 'pubkey':
      return pubkey();
    case 'genpsk':
      return genpsk();
    case 'mac':
      if (rest[0] === '-h' || rest[0] === '--help') {
        process.stdout.write('Usage: lanparty mac NAME\n\nPrint the stable, locally administered MAC address lanparty gives the guest NAME\n(the same in lanparty up, lanparty qemu and lanparty libvirt).\n');
        return 0;
      }
      if (rest.length !== 1) throw new LanpartyError('LP_ERR_USAGE', 'lanparty mac: expected one guest name, e.g. lanparty mac vm1');
      process.stdout.write(formatMac(macForName(rest[0])) + '\n');
      return 0;
    default:
      throw new LanpartyError('LP_ERR_USAGE', `unknown command "${cmd}"; run lanparty --help for the list`);
  }
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    if (err instanceof LanpartyError) {
      process.stderr.write(`lanparty: ${err.message}\n`);
      process.exitCode = exitCodeFor(err.code);
    } else if (err instanceof Error && (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`lanparty: ${err.message}; see lanparty --help\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`lanparty: internal error: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exitCode = 70;
    }
  },
);
