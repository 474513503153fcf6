/*
 * The addon's ABI version check (batch-io.ts): an addon built from other sources exports another
 * abiVersion (or none) and is not used; the refusal names the file, both versions and the fix.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ADDON_ABI_VERSION, abiMismatch, busyPollState, nativeAvailable, nativeLoadError } from '../../../src/io/index.js';

describe('addon ABI version', () => {
  it('accepts the version this lanparty was written against', () => {
    assert.equal(abiMismatch('/x/lanparty_native.node', ADDON_ABI_VERSION), null);
  });

  it('refuses another version, naming the file, both versions and the fix', () => {
    const msg = abiMismatch('/x/lanparty_native.node', ADDON_ABI_VERSION + 1);
    assert.ok(msg);
    assert.match(msg, /\/x\/lanparty_native\.node/);
    assert.match(msg, new RegExp(`ABI version ${ADDON_ABI_VERSION + 1}, this lanparty needs ABI version ${ADDON_ABI_VERSION}`));
    assert.match(msg, /npm run build:native/);
  });

  it('refuses an addon without a version', () => {
    assert.match(abiMismatch('/x/lanparty_native.node', undefined) ?? '', /has no ABI version, this lanparty needs/);
  });

  it('the built addon, when loaded, has this version', { skip: nativeAvailable() ? false : `native addon not loaded (${nativeLoadError()})` }, () => {
    assert.equal(nativeLoadError(), null);
    assert.ok(busyPollState() !== null, 'every export the loader relies on is there');
  });
});
