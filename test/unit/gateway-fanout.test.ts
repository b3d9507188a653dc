import assert from 'node:assert/strict';
import { isTkmsError, TkmsError } from '../../core/index.ts';
import { RequestBatcher } from '../../gateway/request-batcher.ts';
import { shortfallError } from '../../gateway/shortfall.ts';
import type { NodeFailure } from '../../gateway/node-pool.ts';

/** A send whose frames the test answers by hand. */
function manualSend(): { frames: { items: string[]; timeoutMs: number; answer: (r: string[]) => void; fail: (e: unknown) => void }[]; send: (items: string[], timeoutMs: number) => Promise<string[]> } {
  const frames: { items: string[]; timeoutMs: number; answer: (r: string[]) => void; fail: (e: unknown) => void }[] = [];
  return {
    frames,
    send: (items, timeoutMs) =>
      new Promise<string[]>((answer, fail) => {
        frames.push({ items: [...items], timeoutMs, answer, fail });
      }),
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('gateway fan-out units', () => {
  describe('RequestBatcher', () => {
    it('sends at once while under maxInFlight; what queues behind leaves together, in order, answered in order', async () => {
      const m = manualSend();
      const b = new RequestBatcher<string, string>(m.send, { maxBatch: 3, maxInFlight: 1 });
      const first = b.request('a', 5_000);
      assert.equal(m.frames.length, 1, 'an idle peer gets the request immediately');
      assert.deepEqual(m.frames[0]!.items, ['a']);
      const rest = ['b', 'c', 'd', 'e'].map((x) => b.request(x, 5_000));
      assert.equal(m.frames.length, 1);
      assert.equal(b.queued, 4);
      m.frames[0]!.answer(['A']);
      assert.equal(await first, 'A');
      await tick();
      assert.deepEqual(m.frames[1]!.items, ['b', 'c', 'd'], 'at most maxBatch per frame, oldest first');
      m.frames[1]!.answer(['B', 'C', 'D']);
      await tick();
      assert.deepEqual(m.frames[2]!.items, ['e']);
      m.frames[2]!.answer(['E']);
      assert.deepEqual(await Promise.all(rest), ['B', 'C', 'D', 'E']);
      assert.equal(b.queued, 0);
    });

    it('keeps maxInFlight frames going at once', async () => {
      const m = manualSend();
      const b = new RequestBatcher<string, string>(m.send, { maxBatch: 8, maxInFlight: 2 });
      const all = ['a', 'b', 'c', 'd'].map((x) => b.request(x, 5_000));
      assert.deepEqual(
        m.frames.map((f) => f.items),
        [['a'], ['b']],
      );
      m.frames[1]!.answer(['B']);
      await tick();
      assert.deepEqual(m.frames[2]!.items, ['c', 'd']);
      m.frames[0]!.answer(['A']);
      m.frames[2]!.answer(['C', 'D']);
      assert.deepEqual(await Promise.all(all), ['A', 'B', 'C', 'D']);
    });

    it('a request times out on its own deadline, queued or in flight; a queued one is never sent', async () => {
      const m = manualSend();
      const b = new RequestBatcher<string, string>(m.send, { maxBatch: 8, maxInFlight: 1 });
      const inFlight = b.request('slow', 30);
      const queued = b.request('queued', 30);
      const patient = b.request('patient', 5_000);
      for (const p of [inFlight, queued]) await assert.rejects(p, (e: unknown) => isTkmsError(e, 'timeout'));
      assert.equal(b.queued, 1, 'the timed-out request left the queue');
      m.frames[0]!.answer(['too late']);
      await tick();
      assert.deepEqual(m.frames[1]!.items, ['patient']);
      assert.ok(m.frames[1]!.timeoutMs > 4_000 && m.frames[1]!.timeoutMs <= 5_000, `frame timeout ${m.frames[1]!.timeoutMs}`);
      m.frames[1]!.answer(['P']);
      assert.equal(await patient, 'P');
    });

    it('a failed frame fails its requests only; a reply count that does not match fails the frame', async () => {
      const m = manualSend();
      const b = new RequestBatcher<string, string>(m.send, { maxBatch: 2, maxInFlight: 1 });
      const doomed = ['a'].map((x) => b.request(x, 5_000));
      const next = ['b', 'c'].map((x) => b.request(x, 5_000));
      const last = b.request('d', 5_000);
      m.frames[0]!.fail(new TkmsError('unavailable', 'stream reset'));
      await assert.rejects(doomed[0]!, (e: unknown) => isTkmsError(e, 'unavailable'));
      await tick();
      m.frames[1]!.answer(['only one']);
      for (const p of next) await assert.rejects(p, (e: unknown) => isTkmsError(e, 'bad_request') && /answered 1 of 2/.test((e as Error).message));
      await tick();
      m.frames[2]!.answer(['D']);
      assert.equal(await last, 'D');
    });

    it('a send that throws synchronously fails its frame, not the caller', async () => {
      const b = new RequestBatcher<string, string>(
        () => {
          throw new TkmsError('bad_request', 'cannot encode');
        },
        { maxBatch: 4, maxInFlight: 1 },
      );
      await assert.rejects(b.request('x', 1_000), (e: unknown) => isTkmsError(e, 'bad_request'));
      await assert.rejects(b.request('y', 1_000), (e: unknown) => isTkmsError(e, 'bad_request'));
    });

    it('refuses nonsense options', () => {
      const send = async (): Promise<string[]> => [];
      for (const opts of [{ maxBatch: 0, maxInFlight: 1 }, { maxBatch: 1, maxInFlight: 0 }, { maxBatch: 1.5, maxInFlight: 1 }]) {
        assert.throws(() => new RequestBatcher(send, opts), (e: unknown) => isTkmsError(e, 'bad_request'));
      }
    });
  });

  describe('shortfallError', () => {
    const failure = (nodeId: number, code: NodeFailure['code'], retryAfterSeconds?: number): NodeFailure => ({
      nodeId,
      code,
      message: `${code} from ${nodeId}`,
      ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }),
    });
    const answer = { nodeId: 1, wrapped: new Uint8Array(256), proof: new Uint8Array(64) };

    it('every node refused for its rate limit: 429 rate_limited, retry when enough of them take requests again', () => {
      const e = shortfallError({ answers: [answer], failures: [failure(2, 'rate_limited', 7), failure(3, 'rate_limited', 2), failure(4, 'rate_limited', 30)] }, 3, 5);
      assert.equal(e.code, 'rate_limited');
      assert.equal(e.httpStatus, 429);
      // Two more partials are needed: the second-soonest node is back in 7 s.
      assert.equal(e.details?.retryAfterSeconds, 7);
      assert.deepEqual(e.details?.answered, 1);
      assert.match(e.message, /1 of 5 nodes answered, 3 needed \(node 2: rate_limited; node 3: rate_limited; node 4: rate_limited\)/);
      // No hints from the nodes: a second.
      assert.equal(shortfallError({ answers: [], failures: [failure(2, 'rate_limited')] }, 1, 3).details?.retryAfterSeconds, 1);
    });

    it('one shared refusal is the answer; mixed or transport failures are insufficient_partials (503)', () => {
      assert.equal(shortfallError({ answers: [], failures: [failure(1, 'revoked'), failure(2, 'revoked')] }, 2, 3).code, 'revoked');
      for (const failures of [[failure(1, 'revoked'), failure(2, 'rate_limited', 3)], [failure(1, 'timeout')], [failure(1, 'unavailable'), failure(2, 'unavailable')], []]) {
        const e = shortfallError({ answers: [], failures }, 2, 3);
        assert.equal(e.code, 'insufficient_partials');
        assert.equal(e.httpStatus, 503);
        assert.equal(e.details?.retryAfterSeconds, undefined);
      }
    });
  });
});
