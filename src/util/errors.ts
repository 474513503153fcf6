/**
 * LanpartyError: every failure a user can see carries a stable code and a message that names the
 * thing (config path, port, socket, device), what is wrong with it and how to fix it. Callers
 * branch on `code`, never on message text. Leaf module: imports nothing from lanparty.
 */
export type ErrorCode =
  | 'LP_ERR_CONFIG'        // configuration file or flag is invalid
  | 'LP_ERR_USAGE'         // bad command line
  | 'LP_ERR_ADDR_IN_USE'   // a listening address or port is taken
  | 'LP_ERR_PATH_EXISTS'   // a socket path exists and is not ours
  | 'LP_ERR_PERMISSION'    // missing permission (file, device, capability)
  | 'LP_ERR_NO_DEVICE'     // interface or device missing
  | 'LP_ERR_NATIVE'        // native addon missing where it is required
  | 'LP_ERR_WIRE'          // malformed bytes (only thrown by checked parsers)
  | 'LP_ERR_CONTROL'       // control socket problem
  | 'LP_ERR_INTERNAL';

export class LanpartyError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LanpartyError';
    this.code = code;
  }
}

/** Exit codes that scripts can rely on, one per error code. */
export function exitCodeFor(code: ErrorCode): number {
  switch (code) {
    case 'LP_ERR_USAGE': return 2;
    case 'LP_ERR_CONFIG': return 3;
    case 'LP_ERR_ADDR_IN_USE': return 4;
    case 'LP_ERR_PATH_EXISTS': return 4;
    case 'LP_ERR_PERMISSION': return 5;
    case 'LP_ERR_NO_DEVICE': return 6;
    case 'LP_ERR_NATIVE': return 7;
    case 'LP_ERR_CONTROL': return 8;
    case 'LP_ERR_WIRE': return 9;
    case 'LP_ERR_INTERNAL': return 70;
    default: {
      const never: never = code;
      return never;
    }
  }
}

/**
 * Turns a socket setup errno into one clear LanpartyError naming `what` (e.g. "port udp://127.0.0.1:33001").
 */
export function socketSetupError(what: string, err: NodeJS.ErrnoException): LanpartyError {
  switch (err.code) {
    case 'EADDRINUSE':
      return new LanpartyError('LP_ERR_ADDR_IN_USE', `${what}: address already in use; stop the other program or pick another port`, { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new LanpartyError('LP_ERR_PERMISSION', `${what}: permission denied (${err.code}); use a port above 1023 or a path you can write`, { cause: err });
    case 'EADDRNOTAVAIL':
      return new LanpartyError('LP_ERR_NO_DEVICE', `${what}: address not available on this host (${err.code}); name an address of a local interface`, { cause: err });
    case 'ENODEV':
      return new LanpartyError('LP_ERR_NO_DEVICE', `${what}: no such device (${err.code}); check the interface name or address (ip addr)`, { cause: err });
    case 'ENOENT':
      return new LanpartyError('LP_ERR_NO_DEVICE', `${what}: directory does not exist (${err.code}); create it or choose another path`, { cause: err });
    default:
      return new LanpartyError('LP_ERR_INTERNAL', `${what}: ${err.message}`, { cause: err });
  }
}
