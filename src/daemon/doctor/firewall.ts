/**
 * firewall: nftables or iptables rules that drop the traffic of lanparty's ports (UDP/TCP port
 * numbers, multicast groups). Reads `nft list ruleset` and `iptables-save` when they are installed;
 * reports each dropping rule that names a port or group in use, and input chains whose policy is
 * drop without a rule accepting them.
 */
import { execFile } from 'node:child_process';
import type { Check, Finding } from './types.js';

function run(cmd: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 5000 }, (err, stdout) => resolve(err ? undefined : stdout));
  });
}

export const firewall: Check = {
  name: 'firewall',
  description: 'nftables/iptables rules dropping the ports and groups in use',
  async run({ d }) {
    const findings: Finding[] = [];
    const numbers = new Set<number>();
    const groups = new Set<string>();
    for (const p of d.config.ports) {
      if (p.scheme === 'mcast') { numbers.add(p.port); groups.add(p.group); }
      if (p.scheme === 'udp' || p.scheme === 'tcp') numbers.add(p.port);
    }
    const mentions = (line: string) => {
      for (const g of groups) if (line.includes(g)) return g;
      for (const n of numbers) if (new RegExp(`(dport|sport)\\s+(\\{[^}]*\\b${n}\\b[^}]*\\}|${n}\\b)|--dports?\\s+(\\S*,)?${n}\\b`).test(line)) return String(n);
      return undefined;
    };
    const nft = await run('nft', ['list', 'ruleset']);
    if (nft !== undefined) {
      let chain = '';
      let policyDrop = false;
      let accepts = false;
      const endChain = () => {
        if (chain && policyDrop && !accepts) {
          findings.push({ check: this.name, problem: `nftables chain ${chain} drops by default (policy drop) and accepts none of lanparty's ports (${[...numbers].join(', ')})`, fix: `add an accept rule, e.g. nft add rule ${chain} udp dport { ${[...numbers].join(', ')} } accept` });
        }
      };
      let table = '';
      for (const raw of nft.split('\n')) {
        const line = raw.trim();
        const t = /^table (\S+ \S+)/.exec(line);
        if (t) table = t[1];
        const c = /^chain (\S+)/.exec(line);
        if (c) { endChain(); chain = `${table} ${c[1]}`; policyDrop = false; accepts = false; continue; }
        if (/hook input/.test(line) && /policy drop/.test(line)) policyDrop = true;
        const what = mentions(line);
        if (what && /\baccept\b/.test(line)) accepts = true;
        if (what && /\b(drop|reject)\b/.test(line)) {
          findings.push({ check: this.name, problem: `nftables rule in ${chain} drops traffic for ${what}, which lanparty uses: "${line}"`, fix: `delete it (nft -a list chain ${chain} shows its handle; nft delete rule ${chain} handle N) or add an accept rule before it` });
        }
        if (line === '}') { endChain(); chain = ''; }
      }
    }
    const ipt = await run('iptables-save', []);
    if (ipt !== undefined) {
      for (const line of ipt.split('\n')) {
        if (/^:INPUT DROP/.test(line) && ![...ipt.split('\n')].some((l) => mentions(l) && /-j ACCEPT/.test(l))) {
          findings.push({ check: this.name, problem: 'iptables INPUT policy is DROP and no rule accepts lanparty\'s ports', fix: `iptables -I INPUT -p udp -m multiport --dports ${[...numbers].join(',')} -j ACCEPT` });
        }
        const what = mentions(line);
        if (what && /-j (DROP|REJECT)/.test(line)) {
          findings.push({ check: this.name, problem: `iptables rule drops traffic for ${what}, which lanparty uses: "${line}"`, fix: `remove it: iptables ${line.replace(/^-A/, '-D')}` });
        }
      }
    }
    return findings;
  },
};
