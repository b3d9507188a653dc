import assert from 'node:assert/strict';
import { isTkmsError, type ErrorCode, type TkmsError } from '../../core/index.ts';

/** Awaits `promise` and asserts it was refused with a TkmsError of `code`; returns that error. */
export async function expectRefusal(promise: Promise<unknown>, code: ErrorCode): Promise<TkmsError> {
  try {
    await promise;
  } catch (e) {
    assert.ok(isTkmsError(e), `expected a TkmsError, got ${String(e)}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    return e;
  }
  assert.fail(`expected a refusal with ${code}, got an answer`);
}
