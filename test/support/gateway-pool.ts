import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { pino } from 'pino';
import { parseCommitteeJson } from '../../core/committee.ts';
import type { Devnet } from '../../deploy/devnet.ts';
import { NodePool } from '../../gateway/node-pool.ts';
import { waitFor } from './processes.ts';

/**
 * A second gateway for tests that speak to the members directly (as a gateway, or a compromised
 * one, would): its identity goes in the devnet's `extraGatewayPeerIds`, then `connect` gives a
 * NodePool on the devnet's committee once it reaches every member.
 */
export interface TestGateway {
  privateKey: PrivateKey;
  peerId: string;
  connect(devnet: Devnet): Promise<NodePool>;
}

export async function testGateway(): Promise<TestGateway> {
  const privateKey = await generateKeyPair('Ed25519');
  return {
    privateKey,
    peerId: peerIdFromPrivateKey(privateKey).toString(),
    async connect(devnet) {
      const committee = parseCommitteeJson(await readFile(join(devnet.dir, 'committee.json'), 'utf8'));
      const pool = await NodePool.start(committee, pino({ level: 'silent' }), { privateKey });
      const n = committee.members.length;
      await waitFor('test pool connected to every member', () => (pool.connectedMembers().length === n ? true : undefined), { timeoutMs: 20_000 });
      return pool;
    },
  };
}
