import assert from 'node:assert/strict';
import { EarlyReplies } from '../../node/early-replies.ts';

/** A unit of engine work the test finishes by hand. */
function pending(): { work: () => Promise<void>; finish: () => void; fail: (e: Error) => void } {
  let finish!: () => void;
  let fail!: (e: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    finish = () => resolve();
    fail = reject;
  });
  return { work: () => promise, finish, fail };
}

describe('early replies (node/early-replies.ts)', () => {
  it('answers a peer at once up to its bound of unprocessed payloads, then only once the work is done; peers apart', async () => {
    const early = new EarlyReplies(2);
    const jobs = [pending(), pending(), pending()];
    const late: unknown[] = [];
    await early.answer('a', jobs[0]!.work, (e) => late.push(e));
    await early.answer('a', jobs[1]!.work, (e) => late.push(e));
    let thirdAnswered = false;
    const third = early.answer('a', jobs[2]!.work, (e) => late.push(e)).then(() => (thirdAnswered = true));
    // Another peer is not held by a's backlog.
    await early.answer('b', pending().work, () => {});
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(thirdAnswered, false, 'past the bound the reply waits for the work');
    jobs[2]!.finish();
    await third;
    assert.equal(thirdAnswered, true);
    // A refusal found after an early reply goes to the callback, not to the sender.
    jobs[0]!.fail(new Error('bad signature'));
    jobs[1]!.finish();
    await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(late.map((e) => (e as Error).message), ['bad signature']);
    // Everything of a processed, so it is answered early again.
    const again = pending();
    await early.answer('a', again.work, () => {});
    again.finish();
  });

  it('a refusal past the bound reaches the sender', async () => {
    const early = new EarlyReplies(0);
    const late: unknown[] = [];
    await assert.rejects(
      early.answer('a', async () => Promise.reject(new Error('refused')), (e) => late.push(e)),
      /refused/,
    );
    assert.deepEqual(late, []);
  });
});
