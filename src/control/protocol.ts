/**
 * The control protocol: newline-delimited JSON over an owner-only unix socket.
 *   request:  {"id": 1, "cmd": "status", "args": {...}}
 *   reply:    {"id": 1, "ok": true, "result": ...}
 *             {"id": 1, "ok": false, "error": {"code": "LP_ERR_...", "message": "..."}}
 *   event:    {"event": "port:up", "data": {...}}         (after a "subscribe" request)
 * A command may instead take over the connection for a stream of its own (capture sends binary
 * records after its reply); see the command's own module.
 */
import type { ErrorCode } from '../util/index.js';

export interface ControlRequest {
  id: number;
  cmd: string;
  args?: Record<string, unknown>;
}

export type ControlReply =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: { code: ErrorCode; message: string } };

export interface ControlEvent {
  event: string;
  data: unknown;
}

/**
 * Longest request line accepted (bytes, without the newline); a longer one closes the connection
 * with an error line, and the server reads no more of it. The largest real request, `inject` of a
 * 65,553-byte frame, is about 131 KB of hex.
 */
export const MAX_REQUEST_BYTES = 1 << 20;
