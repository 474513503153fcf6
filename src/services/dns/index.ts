export * from './responder.js';
