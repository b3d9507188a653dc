import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { TKMS_ACL_BYTECODE, TKMS_ACL_DEPLOYED_BYTECODE } from '../../chain/acl-artifact.ts';
import { ARTIFACT_JSON, ARTIFACT_TS, artifactJson, artifactTs, compileAcl } from '../../scripts/compile-contract.ts';

/**
 * The committed artifact is what the pinned solc makes of contracts/TkmsAcl.sol, byte for byte, and
 * the contract runs on pre-Shanghai chains: no PUSH0 and no Cancun opcode anywhere in its code.
 */

/** Opcodes newer than Paris: PUSH0 (Shanghai); TLOAD, TSTORE, MCOPY, BLOBHASH, BLOBBASEFEE (Cancun). */
const POST_PARIS_OPCODES = new Map([
  [0x5f, 'PUSH0'],
  [0x5c, 'TLOAD'],
  [0x5d, 'TSTORE'],
  [0x5e, 'MCOPY'],
  [0x49, 'BLOBHASH'],
  [0x4a, 'BLOBBASEFEE'],
]);

/** solc appends CBOR metadata whose length is the code's last two bytes; it is data, not code. */
function withoutMetadata(code: Uint8Array): Uint8Array {
  if (code.length < 2) return code;
  const length = (code[code.length - 2]! << 8) | code[code.length - 1]!;
  return length + 2 <= code.length && code[code.length - length - 2] === 0xa1 ? code.subarray(0, code.length - length - 2) : code;
}

/** Walks the instructions, skipping PUSH1..PUSH32 immediates, and names every post-Paris opcode met. */
function postParisOpcodes(code: Uint8Array): string[] {
  const found: string[] = [];
  for (let pc = 0; pc < code.length; pc++) {
    const op = code[pc]!;
    const name = POST_PARIS_OPCODES.get(op);
    if (name !== undefined) found.push(`${name}@${pc}`);
    if (op >= 0x60 && op <= 0x7f) pc += op - 0x5f;
  }
  return found;
}

const bytes = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex.replace(/^0x/, ''), 'hex'));

describe('chain artifact: contracts/TkmsAcl.sol compiled by the pinned solc', function () {
  this.timeout(60_000);

  it('recompiles to exactly the committed chain/acl-artifact.ts and contracts/build/TkmsAcl.json', () => {
    const compiled = compileAcl();
    assert.equal(artifactTs(compiled), readFileSync(ARTIFACT_TS, 'utf8'), 'run npm run contracts and commit the result');
    assert.equal(artifactJson(compiled), readFileSync(ARTIFACT_JSON, 'utf8'));
    assert.equal(compiled.deployedBytecode, TKMS_ACL_DEPLOYED_BYTECODE);
  });

  it('the opcode walk finds PUSH0 and Cancun opcodes in code, but not inside PUSH data or metadata', () => {
    assert.deepEqual(postParisOpcodes(bytes('60015f5c5d5e494a00')), ['PUSH0@2', 'TLOAD@3', 'TSTORE@4', 'MCOPY@5', 'BLOBHASH@6', 'BLOBBASEFEE@7']);
    assert.deepEqual(postParisOpcodes(bytes('605f7f' + '5f'.repeat(32) + '00')), [], 'PUSH1 0x5f and PUSH32 of 0x5f bytes are data');
    assert.deepEqual(postParisOpcodes(bytes('61005f5f')), ['PUSH0@3'], 'PUSH2 skips exactly two bytes');
    const metadata = 'a164736f6c634300085f000a';
    assert.deepEqual(postParisOpcodes(withoutMetadata(bytes(`6001${metadata}`))), []);
    assert.deepEqual(postParisOpcodes(withoutMetadata(bytes('5f'))), ['PUSH0@0'], 'code without metadata is kept whole');
  });

  it('the deployed and the creation bytecode hold no PUSH0 and no Cancun opcode', () => {
    const deployed = withoutMetadata(bytes(TKMS_ACL_DEPLOYED_BYTECODE));
    assert.ok(deployed.length > 1_000 && deployed.length < bytes(TKMS_ACL_DEPLOYED_BYTECODE).length, 'metadata stripped, code kept');
    assert.deepEqual(postParisOpcodes(deployed), []);
    // The creation code is constructor code followed by the deployed code; walking it whole would
    // run into the deployed code's metadata, so walk the constructor part only.
    assert.ok(TKMS_ACL_BYTECODE.endsWith(TKMS_ACL_DEPLOYED_BYTECODE.slice(2)), 'creation code = constructor ‖ deployed code');
    const creation = bytes(TKMS_ACL_BYTECODE);
    const constructorPart = creation.subarray(0, creation.length - bytes(TKMS_ACL_DEPLOYED_BYTECODE).length);
    assert.ok(constructorPart.length > 0);
    assert.deepEqual(postParisOpcodes(constructorPart), []);
  });
});
