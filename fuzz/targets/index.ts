/** Every fuzz target, in the order `npm run fuzz` runs them. */
import type { FuzzTarget } from '../engine.js';
import { arpTarget, decodeTarget, dhcpTarget, dnsTarget, ethernetTarget, ipv4Target, vxlanTarget } from './wire.js';
import { framerTarget, servicesTarget, switchTarget, vxlanPortTarget } from './switching.js';
import { wgDeviceTarget, wgInnerTarget, wgMessagesTarget } from './wg.js';
import { configTarget, controlTarget, leaseFileTarget, locatorTarget, replayTarget } from './input.js';

export const TARGETS: readonly FuzzTarget[] = [
  ethernetTarget, arpTarget, ipv4Target, dhcpTarget, dnsTarget, vxlanTarget, decodeTarget,
  framerTarget, switchTarget, servicesTarget, vxlanPortTarget,
  configTarget, locatorTarget, controlTarget, replayTarget, leaseFileTarget,
  wgMessagesTarget, wgDeviceTarget, wgInnerTarget,
];
