export * from './ethernet.js';
export * from './checksum.js';
export * from './ipv4.js';
export * from './udp.js';
export * from './arp.js';
export * from './icmp.js';
export * from './dhcp.js';
export * from './dns.js';
