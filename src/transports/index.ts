/**
 * Transports: one folder per locator scheme, each a Transport that opens its ports on the switch.
 * The daemon opens them (daemon/transports.ts) and reads their status; nothing else imports them.
 */
export * from './transport.js';
export * from './datagram.js';
export { SegmentRegistry } from './segment.js';
export * from './dgram/index.js';
export * from './mcast/index.js';
export * from './stream/index.js';
export * from './tap/index.js';
export * from './vxlan/index.js';
export * from './wg/index.js';
