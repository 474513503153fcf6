export * from './port.js';
export * from './mac-table.js';
export * from './switch.js';
export * from './mirror.js';
