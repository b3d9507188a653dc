import assert from 'node:assert/strict';
import fc from 'fast-check';
import { sha256 } from '@noble/hashes/sha2.js';
import { messageSha256 } from '../../core/digest.ts';
import { installNodeCryptoPaths, uninstallNodeCryptoPaths } from '../../core/node-crypto.ts';

describe('messageSha256', () => {
  it('gives @noble/hashes\' bytes with the node:crypto path installed and without it', () => {
    try {
      for (const install of [installNodeCryptoPaths, uninstallNodeCryptoPaths]) {
        install();
        fc.assert(fc.property(fc.uint8Array({ maxLength: 4096 }), (data) => assert.deepEqual(messageSha256(data), sha256(data))));
        const large = Uint8Array.from({ length: 200_000 }, (_, i) => (i * 31) & 0xff);
        assert.deepEqual(messageSha256(large), sha256(large));
      }
    } finally {
      installNodeCryptoPaths();
    }
  });
});
