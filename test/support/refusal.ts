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

/** The same for a synchronous call: asserts it throws a TkmsError with `code` (and a message matching `message`), and returns the message. */
export function expectSyncRefusal(fn: () => unknown, code: ErrorCode, message?: RegExp): string {
  try {
    fn();
  } catch (e) {
    assert.ok(isTkmsError(e), `expected a TkmsError, got ${String(e)}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    if (message !== undefined) assert.match(e.message, message);
    return e.message;
  }
  assert.fail(`expected a refusal with ${code}`);
}
