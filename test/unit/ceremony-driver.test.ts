import assert from 'node:assert/strict';
import pino from 'pino';
import { CeremonyDriver } from '../../node/ceremony-driver.ts';
import { DeliveryQueues } from '../../node/ceremony-delivery.ts';

describe('ceremony driver (node/ceremony-driver.ts)', () => {
  it('a vote that cannot be written is never sent: not with its step, not by a later step, not by a retransmit round', async () => {
    const sent: string[] = [];
    const delivery = new DeliveryQueues<number>({
      send: async (_to, frame) => {
        sent.push(Buffer.from(frame).toString());
        return { ok: true };
      },
      keyOf: (to) => String(to),
      nameOf: (to) => to,
      isStopped: () => false,
      log: pino({ level: 'silent' }),
      logFields: {},
    });
    const vote = Buffer.from('vote');
    const driver = new CeremonyDriver<number>({
      delivery,
      others: () => [2, 3],
      publicKeyOf: (m) => Uint8Array.of(m),
      frameOf: (payload) => payload,
      persistVote: async () => {
        throw new Error('ENOSPC');
      },
      afterStep: () => {},
      isActive: () => true,
    });
    await assert.rejects(driver.step(() => ({ persistVote: vote, outbound: [{ payload: vote }] })), /ENOSPC/);
    assert.equal(driver.active(), false);
    await driver.step(() => ({ outbound: [{ payload: vote }] }));
    driver.retransmitRound(() => [{ payload: vote }]);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(sent, []);
  });

  it('a vote on disk goes out with its step', async () => {
    const sent: string[] = [];
    const order: string[] = [];
    const delivery = new DeliveryQueues<number>({
      send: async (to, frame) => {
        sent.push(`${to}:${Buffer.from(frame).toString()}`);
        order.push('sent');
        return { ok: true };
      },
      keyOf: (to) => String(to),
      nameOf: (to) => to,
      isStopped: () => false,
      log: pino({ level: 'silent' }),
      logFields: {},
    });
    const driver = new CeremonyDriver<number>({
      delivery,
      others: () => [2, 3],
      publicKeyOf: (m) => Uint8Array.of(m),
      frameOf: (payload) => payload,
      persistVote: async () => {
        order.push('written');
      },
      afterStep: () => {},
      isActive: () => true,
    });
    await driver.step(() => ({ persistVote: Buffer.from('vote'), outbound: [{ payload: Buffer.from('vote') }] }));
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(sent.sort(), ['2:vote', '3:vote']);
    assert.equal(order[0], 'written');
  });
});
