/**
 * lanparty genkey | pubkey | genpsk: WireGuard keys the way `wg` makes them. genkey prints a new
 * clamped private key, pubkey reads a private key on stdin and prints its public key, genpsk
 * prints a random preshared key; all base64, one line, so they mix freely with `wg`.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { generatePrivateKey, keyText, publicKeyOf } from '../crypto/index.js';
import { LanpartyError } from '../util/index.js';

export function genkey(): number {
  process.stdout.write(keyText(generatePrivateKey()) + '\n');
  return 0;
}

export function genpsk(): number {
  process.stdout.write(keyText(randomBytes(32)) + '\n');
  return 0;
}

/** `input` is the private key text; default stdin. */
export function pubkey(input: string = readFileSync(0, 'utf8')): number {
  const t = input.trim();
  if (!/^[A-Za-z0-9+/]{43}=$/.test(t)) {
    throw new LanpartyError('LP_ERR_USAGE', 'lanparty pubkey: stdin is not a private key (expected 44 base64 characters); try lanparty genkey | lanparty pubkey');
  }
  process.stdout.write(keyText(publicKeyOf(Buffer.from(t, 'base64'))) + '\n');
  return 0;
}
