/**
 * io: the data path's boundary with the kernel. Batch sockets (udp4 and unix datagrams, native
 * recvmmsg/sendmmsg or the node:dgram fallback), TAP devices, stream port readers and the peer
 * links' AEAD, over the optional native addon (docs/data-path.md). addon.ts is the only module
 * that loads it. Transports use io through this file only.
 */
export type {
  BatchSocket, BatchSocketOptions, DgramAddress, Ipv4Net, MulticastOptions, RxBatch, SocketStats,
  InterfaceState, TapWriteResult,
} from './types.js';
export {
  ADDON_ABI_VERSION, abiMismatch, busyPollPolicy, busyPollState, nativeAead, nativeAvailable, nativeLoadError, setBusyPoll,
  unixBacklogLimits, type BusyPollPolicy, type BusyPollState, type NativeAead,
} from './addon.js';
export { MAX_PEERS } from './options.js';
export { openBatchSocket, openBatchSocketWith, socketStatsOf, type BatchImplementation } from './dgram.js';
export { openStreamReader, streamReaderAvailable, type StreamReader } from './stream-reader.js';
export {
  TAP_SENT, TAP_FULL, TAP_DOWN, TAP_GONE, TAP_ERROR, configureInterface, interfaceState, openTapDevice, tapRxSlabBytes,
  type TapDevice, type TapDeviceOptions, type TapRxBatch,
} from './tap.js';
