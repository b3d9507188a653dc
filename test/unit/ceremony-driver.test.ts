import assert from 'node:assert/strict';
import pino from 'pino';
import { CeremonyDriver } from '../../node/ceremony-driver.ts';
import { DeliveryQueues } from '../../node/ceremony-delivery.ts';

/** A driver over real delivery queues to members 2 and 3; `sent` records "to:payload", `order` when the vote was written and each send. */
function driverWith(persistVote: () => Promise<void>): { driver: CeremonyDriver<number>; sent: string[]; order: string[] } {
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
});
