/**
 * Loaded first into every process of the unit tier (scripts/test-tier.sh passes it to node with
 * --import): the unit tier is pure, so a test that listens, connects or binds through Node's net or
 * dgram fails at once, naming the tier it belongs in. Sockets the native addon opens do not pass
 * through here; the tier's file list keeps those tests in test/io.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';

function refuse(what: string): () => never {
  return () => {
    throw new Error(`${what} in the unit tier (no sockets there): a test that needs a real socket belongs in test/io/ (npm run test:io)`);
  };
}

net.Server.prototype.listen = refuse('net.Server.listen');
net.Socket.prototype.connect = refuse('net.Socket.connect');
// send() on an unbound socket binds it first, through bind().
dgram.Socket.prototype.bind = refuse('dgram.Socket.bind');
dgram.Socket.prototype.connect = refuse('dgram.Socket.connect');
