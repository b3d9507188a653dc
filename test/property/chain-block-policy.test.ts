import assert from 'node:assert/strict';
import fc from 'fast-check';
import { agree, confirmedHead, headAgeSeconds, headFallsBehind, isReorg, isTrailingReport, judgeBlock, MAX_HEAD_SPREAD_BLOCKS, needsAncestorCheck, type BlockRef } from '../../chain/block-policy.ts';

/**
 * The reader's pure decisions, against their definitions: a head is vouched for by at least
 * `quorum` providers and no one provider can pull it back more than MAX_HEAD_SPREAD_BLOCKS, a block is judged against the head and maxBlockLag, an answer counts only
 * when enough providers gave it and none gave another, and a reorg is any replacement of a block we saw.
 */
const blockNumber = fc.integer({ min: 0, max: 1_000_000 });
const hash = fc.constantFrom('0xaa', '0xbb', '0xcc');

describe('chain block policy (properties)', () => {
  it('confirmedHead: the highest block quorum providers reached, only within the spread of the highest report', () => {
    fc.assert(
      fc.property(fc.array(blockNumber, { maxLength: 8 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 10 }), (heads, quorum, spread) => {
        const v = confirmedHead(heads, quorum, spread);
        if (heads.length < quorum) return assert.equal(v.ok ? 'ok' : v.reason, 'too_few');
        const highest = Math.max(...heads);
        if (!v.ok) {
          assert.equal(v.reason, 'unconfirmed');
          assert.ok(heads.filter((x) => x >= highest - spread).length < quorum, 'fails only when quorum providers do not confirm the highest report');
          return;
        }
        assert.ok(heads.filter((x) => x >= v.number).length >= quorum, 'at least quorum providers reached it');
        assert.ok(heads.filter((x) => x > v.number).length < quorum, 'no higher block has quorum');
        assert.ok(v.number >= highest - spread, 'within the spread of the highest report');
      }),
    );
  });

  it('confirmedHead: one provider reporting anything cannot pull the head more than the spread below the honest ones', () => {
    fc.assert(
      fc.property(fc.array(blockNumber, { minLength: 1, maxLength: 7 }), fc.integer({ min: 0, max: 2_000_000 }), fc.integer({ min: 0, max: 7 }), fc.integer({ min: 1, max: 8 }), (honest, lie, at, quorum) => {
        const heads = [...honest];
        heads.splice(at % (honest.length + 1), 0, lie);
        const v = confirmedHead(heads, Math.min(quorum, heads.length));
        // Fails closed (no head) or adopts a head near the highest honest one: never a far older head.
        if (v.ok) assert.ok(v.number >= Math.max(...honest) - MAX_HEAD_SPREAD_BLOCKS, `heads ${heads} gave ${v.number}`);
      }),
    );
    assert.deepEqual(confirmedHead([100, 100, 50], 3), { ok: false, reason: 'unconfirmed', highest: 100 }, 'quorum = all: an old head is doubt, not the head');
    assert.deepEqual(confirmedHead([100, 99, 50], 2), { ok: true, number: 99 }, 'quorum 2 of 3: the laggard is outvoted');
    assert.deepEqual(confirmedHead([100, 98], 2), { ok: true, number: 98 }, 'a provider a couple of blocks behind is ordinary lag');
  });

  it('headFallsBehind: only when a reported head is more than the spread past the one held', () => {
    fc.assert(
      fc.property(blockNumber, fc.option(blockNumber, { nil: undefined }), fc.integer({ min: 0, max: 10 }), (head, reported, spread) => {
        assert.equal(headFallsBehind(head, reported, spread), reported !== undefined && reported - head > spread);
      }),
    );
  });

  it('judgeBlock: wait iff at most aheadSlack above the head, ahead iff further; too old iff more than maxBlockLag behind; no lag limit without maxBlockLag', () => {
    fc.assert(
      fc.property(blockNumber, blockNumber, fc.option(fc.integer({ min: 0, max: 1_000 }), { nil: undefined }), fc.integer({ min: 0, max: 8 }), (block, head, lag, slack) => {
        const v = judgeBlock(block, head, lag, slack);
        if (block > head + slack) assert.equal(v, 'ahead');
        else if (block > head) assert.equal(v, 'wait');
        else if (lag !== undefined && head - block > lag) assert.equal(v, 'too_old');
        else assert.equal(v, 'ok');
      }),
    );
    assert.equal(judgeBlock(10, 42, 32), 'ok');
    assert.equal(judgeBlock(9, 42, 32), 'too_old');
    assert.equal(judgeBlock(0, 1_000_000, undefined), 'ok');
    assert.equal(judgeBlock(45, 42, 32, 3), 'wait');
    assert.equal(judgeBlock(46, 42, 32, 3), 'ahead');
    assert.equal(judgeBlock(43, 42, 32), 'ahead', 'no slack: any block past the head is ahead');
  });

  it('agree: an answer only when at least quorum answered and every answer is the same', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 8 }), fc.integer({ min: 1, max: 8 }), (answers, quorum) => {
        const v = agree(answers, quorum, String);
        const unanimous = answers.every((a) => a === answers[0]);
        if (answers.length < quorum) assert.deepEqual(v, { ok: false, reason: 'too_few' });
        else if (!unanimous) assert.deepEqual(v, { ok: false, reason: 'disagree' });
        else assert.deepEqual(v, { ok: true, value: answers[0] });
      }),
    );
    assert.deepEqual(agree([true, true, false], 1, String), { ok: false, reason: 'disagree' }, 'one liar voids even a low quorum');
  });

  it("headAgeSeconds is the clock minus the block's timestamp, never negative", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2e9 }), fc.integer({ min: 0, max: 2e12 }), (timestamp, nowMs) => {
        const head: BlockRef = { number: 1, hash: '0xaa', timestamp };
        const age = headAgeSeconds(nowMs, head);
        assert.ok(age >= 0);
        assert.equal(age, Math.max(0, nowMs / 1000 - timestamp));
      }),
    );
  });

  it('isReorg: a lower head, another block at the same height, a child of another parent, or a replaced ancestor', () => {
    fc.assert(
      fc.property(blockNumber, hash, fc.integer({ min: -5, max: 5 }), hash, fc.option(hash, { nil: undefined }), fc.option(hash, { nil: undefined }), (n, h, step, nextHash, parentHash, ancestor) => {
        const last: BlockRef = { number: n + 10, hash: h, timestamp: 0 };
        const next = { number: n + 10 + step, hash: nextHash, timestamp: 0, parentHash };
        const reorg = isReorg(last, next, ancestor);
        if (step < 0) assert.equal(reorg, true);
        else if (step === 0) assert.equal(reorg, nextHash !== h);
        else if (step === 1 && parentHash !== undefined) assert.equal(reorg, parentHash !== h);
        else assert.equal(reorg, ancestor !== undefined && ancestor !== h);
        assert.equal(needsAncestorCheck(last, next), step > 0 && !(step === 1 && parentHash !== undefined));
      }),
    );
  });

  it('isTrailingReport: a lower head is a trailing provider only when it is a block we adopted, with the same hash', () => {
    fc.assert(
      fc.property(blockNumber, fc.integer({ min: -5, max: 5 }), hash, hash, fc.option(hash, { nil: undefined }), (n, step, lastHash, nextHash, known) => {
        const last: BlockRef = { number: n + 10, hash: lastHash, timestamp: 0 };
        const next: BlockRef = { number: n + 10 + step, hash: nextHash, timestamp: 0 };
        assert.equal(isTrailingReport(last, next, known), step < 0 && known === nextHash);
      }),
    );
  });
});
