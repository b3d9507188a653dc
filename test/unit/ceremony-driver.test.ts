import assert from 'node:assert/strict';
import pino from 'pino';
import { answersLaggard, CeremonyDriver } from '../../node/ceremony-driver.ts';
import { DeliveryQueues, FULL_RETRANSMIT_EVERY, type FrameReply } from '../../node/ceremony-delivery.ts';
import { CEREMONY_MESSAGE_TYPES, DKG_CEREMONY_MESSAGE_TYPES, type CeremonyMessageKind } from '../../core/ceremony/codec.ts';

/** Real delivery queues to members by number, over `send`. */
function queuesOver(send: (to: number, frame: Uint8Array) => Promise<FrameReply>): DeliveryQueues<number> {
  return new DeliveryQueues<number>({ send, keyOf: (to) => String(to), nameOf: (to) => to, isStopped: () => false, log: pino({ level: 'silent' }), logFields: {} });
}

/** A driver over real delivery queues to members 2 and 3; `sent` records "to:payload", `order` when the vote was written and each send. */
function driverWith(persistVote: () => Promise<void>): { driver: CeremonyDriver<number>; sent: string[]; order: string[] } {
  const sent: string[] = [];
  const order: string[] = [];
  const delivery = queuesOver(async (to, frame) => {
    sent.push(`${to}:${Buffer.from(frame).toString()}`);
    order.push('sent');
    return { ok: true };
  });
  const driver = new CeremonyDriver<number>({
    delivery,
    others: () => [2, 3],
    publicKeyOf: (m) => Uint8Array.of(m),
    frameOf: (payload) => payload,
    persistVote: async () => {
      await persistVote();
      order.push('written');
    },
    afterStep: () => {},
    isActive: () => true,
  });
  return { driver, sent, order };
}

describe('ceremony driver (node/ceremony-driver.ts)', () => {
  it('a vote that cannot be written is never sent: not with its step, not by a later step, not by a retransmit round', async () => {
    const { driver, sent } = driverWith(async () => {
      throw new Error('ENOSPC');
    });
    const vote = Buffer.from('vote');
    await assert.rejects(driver.step(() => ({ persistVote: vote, outbound: [{ payload: vote }] })), /ENOSPC/);
    assert.equal(driver.active(), false);
    await driver.step(() => ({ outbound: [{ payload: vote }] }));
    driver.retransmitRound(() => [{ payload: vote }]);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(sent, []);
  });

  it('a vote on disk goes out with its step', async () => {
    const { driver, sent, order } = driverWith(async () => {});
    await driver.step(() => ({ persistVote: Buffer.from('vote'), outbound: [{ payload: Buffer.from('vote') }] }));
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(sent.sort(), ['2:vote', '3:vote']);
    assert.equal(order[0], 'written');
  });

  for (const [family, types] of [['reshare', CEREMONY_MESSAGE_TYPES], ['dkg', DKG_CEREMONY_MESSAGE_TYPES]] as const) {
    it(`once a ${family} engine holds a certificate, retransmits carry it alone, and never again to a participant that took it, not even in a full round`, async () => {
      // Payloads as the engines write them: version, type byte, then the body (here its name).
      const payload = (kind: CeremonyMessageKind) => Uint8Array.from([1, types[kind], ...Buffer.from(kind)]);
      const nameOf = (frame: Uint8Array) => Buffer.from(frame.subarray(2)).toString();
      const sent: string[] = [];
      // Member 3 refuses the certificate (its engine is busy, say) until told otherwise.
      let threeTakesCertificates = false;
      const delivery = queuesOver(async (to, frame) => {
        sent.push(`${to}:${nameOf(frame)}`);
        return to === 3 && nameOf(frame) === 'certificate' && !threeTakesCertificates ? { ok: false, code: 'unavailable', message: 'busy' } : { ok: true };
      });
      const driver = new CeremonyDriver<number>({ delivery, others: () => [2, 3], publicKeyOf: (m) => Uint8Array.of(m), frameOf: (p) => p, persistVote: async () => {}, afterStep: () => {}, isActive: () => true });
      const settle = () => new Promise((r) => setTimeout(r, 20));
      const own = [payload('dealing'), payload('proposal'), payload('vote')];
      await driver.step(() => ({ outbound: own.map((p) => ({ payload: p })) }));
      await settle();
      // Without a certificate, a full round sends everything again.
      for (let i = 0; i < FULL_RETRANSMIT_EVERY; i++) driver.retransmitRound(() => own.map((p) => ({ payload: p })));
      await settle();
      assert.equal(sent.filter((x) => x === '2:dealing').length, 2, 'the first send and one full round');

      const withCertificate = [...own, payload('certificate')].map((p) => ({ payload: p }));
      await driver.step(() => ({ outbound: [{ payload: payload('certificate') }] }));
      await settle();
      sent.length = 0;
      // Rounds are half a phase apart: each finds the last one's refused copy answered, no longer queued.
      for (let i = 0; i < 2 * FULL_RETRANSMIT_EVERY; i++) {
        driver.retransmitRound(() => withCertificate);
        await settle();
      }
      assert.ok(sent.every((x) => x === '3:certificate'), `only the certificate, only to the member that refused it: ${sent.join(' ')}`);
      assert.ok(sent.length >= 2 * FULL_RETRANSMIT_EVERY, 'the refusing member gets it every round');
      threeTakesCertificates = true;
      driver.retransmitRound(() => withCertificate);
      await settle();
      sent.length = 0;
      for (let i = 0; i < 2 * FULL_RETRANSMIT_EVERY; i++) driver.retransmitRound(() => withCertificate);
      await settle();
      assert.deepEqual(sent, [], 'a certificate taken is not sent again');
    });
  }

  it('a payload still queued or in flight to a participant is not queued to it again; once answered, it can be sent again', async () => {
    const sent: string[] = [];
    let answer: (() => void) | undefined;
    const delivery = queuesOver(async (to, frame) => {
      sent.push(`${to}:${Buffer.from(frame).toString()}`);
      // Member 2 answers only when told (a loaded peer); member 3 at once.
      if (to === 2) await new Promise<void>((r) => (answer = r));
      return { ok: true };
    });
    const settle = () => new Promise((r) => setTimeout(r, 10));
    const dealing = Buffer.from('dealing');
    const echo = Buffer.from('echo');
    for (const to of [2, 3]) delivery.enqueue(to, dealing, { mustQueue: true, payload: dealing });
    await settle();
    // Retransmit rounds while member 2 has not answered: an equal copy (another buffer) is not queued behind the first.
    for (let round = 0; round < 3; round++) {
      for (const to of [2, 3]) if (!delivery.wasAcked(to, dealing)) delivery.enqueue(to, Buffer.from('dealing'), { mustQueue: false, payload: Buffer.from('dealing') });
      delivery.enqueue(2, echo, { mustQueue: true, payload: echo });
    }
    await settle();
    assert.deepEqual(sent, ['2:dealing', '3:dealing']);
    answer!();
    await settle();
    assert.deepEqual(sent, ['2:dealing', '3:dealing', '2:echo'], 'the echo, queued once, follows');
    answer!();
    await settle();
    assert.ok(delivery.wasAcked(2, dealing) && delivery.wasAcked(2, echo));
    // Answered: the next full round's copy goes again.
    for (let i = 0; i < FULL_RETRANSMIT_EVERY; i++) delivery.nextRound();
    delivery.enqueue(2, Buffer.from('dealing'), { mustQueue: false, payload: Buffer.from('dealing') });
    await settle();
    answer!();
    await settle();
    assert.deepEqual(sent.slice(3), ['2:dealing']);
  });

  it('answers a laggard for a repeated message at once, and one lacking the certificate only from half a phase after finishing', () => {
    const at = (o: Partial<Parameters<typeof answersLaggard>[0]>) => answersLaggard({ repeat: false, lacksCertificate: false, finishedAt: 1_000, nowMs: 1_000, phaseMs: 1_000, ...o });
    assert.equal(at({ repeat: true }), true);
    assert.equal(at({}), false, 'a voter finishing together with this node');
    assert.equal(at({ lacksCertificate: true, nowMs: 1_499 }), false, 'still finishing together');
    assert.equal(at({ lacksCertificate: true, nowMs: 1_500 }), true, 'started late');
    assert.equal(at({ lacksCertificate: true, finishedAt: undefined, nowMs: 9_000 }), false, 'not finished here');
  });
});
