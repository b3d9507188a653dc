import assert from 'node:assert/strict';
import fc from 'fast-check';
import { agree, headAgeSeconds, isReorg, judgeBlock, needsAncestorCheck, quorumHeadNumber, type BlockRef } from '../../chain/block-policy.ts';

/**
 * The reader's pure decisions, against their definitions: a head is vouched for by at least
 * `quorum` providers, a block is judged against the head and maxBlockLag, an answer counts only
 * when enough providers gave it and none gave another, and a reorg is any replacement of a block we saw.
 */
const blockNumber = fc.integer({ min: 0, max: 1_000_000 });
const hash = fc.constantFrom('0xaa', '0xbb', '0xcc');

describe('chain block policy (properties)', () => {
  it('quorumHeadNumber is the highest block at least quorum providers reached', () => {
    fc.assert(
      fc.property(fc.array(blockNumber, { maxLength: 8 }), fc.integer({ min: 1, max: 8 }), (heads, quorum) => {
        const h = quorumHeadNumber(heads, quorum);
        if (heads.length < quorum) return assert.equal(h, undefined);
        assert.ok(h !== undefined);
        assert.ok(heads.filter((x) => x >= h).length >= quorum, 'at least quorum providers reached it');
        assert.ok(heads.filter((x) => x > h).length < quorum, 'no higher block has quorum');
      }),
    );
  });

  it('judgeBlock: ahead iff above the head; too old iff more than maxBlockLag behind; no lag limit without maxBlockLag', () => {
    fc.assert(
      fc.property(blockNumber, blockNumber, fc.option(fc.integer({ min: 0, max: 1_000 }), { nil: undefined }), (block, head, lag) => {
        const v = judgeBlock(block, head, lag);
        if (block > head) assert.equal(v, 'ahead');
        else if (lag !== undefined && head - block > lag) assert.equal(v, 'too_old');
        else assert.equal(v, 'ok');
      }),
    );
    assert.equal(judgeBlock(10, 42, 32), 'ok');
    assert.equal(judgeBlock(9, 42, 32), 'too_old');
    assert.equal(judgeBlock(0, 1_000_000, undefined), 'ok');
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
});
