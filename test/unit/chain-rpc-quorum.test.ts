import assert from 'node:assert/strict';
import type { PublicClient } from 'viem';
import { agreedAnswer, askAll, classifyRpcError, createProviders, type RpcProvider } from '../../chain/rpc-quorum.ts';
import { isTkmsError } from '../../core/index.ts';

/**
 * The fan-out over RPC providers, with fake clients standing in for the network: malformed
 * answers count as failures, a timeout is told apart from other failures, a dissent voids the
 * answer, and messages name providers by index and host only (URLs often carry API keys).
 */
function fakeProviders(...answers: (() => Promise<unknown>)[]): RpcProvider[] {
  return answers.map((answer, i) => ({ name: `rpc[${i}] fake`, client: { answer } as unknown as PublicClient }));
}
const ask = (client: PublicClient) => (client as unknown as { answer: () => Promise<unknown> }).answer();
const asBool = (raw: unknown) => (typeof raw === 'boolean' ? raw : undefined);

function timeoutError(): Error {
  const inner = new Error('took too long');
  inner.name = 'TimeoutError';
  const outer = new Error('HTTP request failed', { cause: inner });
  outer.name = 'HttpRequestError';
  return outer;
}

function unavailableMessage(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    assert.ok(isTkmsError(error) && error.code === 'unavailable', String(error));
    return error.message;
  }
  assert.fail('expected unavailable');
}

describe('chain RPC quorum', () => {
  it('names providers by index and host, never by path or credentials', () => {
    const names = createProviders(['https://user:secret@rpc.example.org/v3/APIKEY123', 'http://127.0.0.1:8545'], 1_000).map((p) => p.name);
    assert.deepEqual(names, ['rpc[0] rpc.example.org', 'rpc[1] 127.0.0.1:8545']);
  });

  it('classifies a timeout anywhere in the cause chain, and contract-shaped failures apart from transport ones', () => {
    assert.deepEqual(classifyRpcError(timeoutError()), { outcome: 'timeout', notOurContract: false });
    const reverted = new Error('reverted');
    reverted.name = 'ContractFunctionZeroDataError';
    assert.deepEqual(classifyRpcError(new Error('call failed', { cause: reverted })), { outcome: 'unavailable', notOurContract: true });
    assert.deepEqual(classifyRpcError('not even an Error'), { outcome: 'unavailable', notOurContract: false });
  });

  it('agrees when every provider answers alike, and reports each call to the metrics sink', async () => {
    const seen: string[] = [];
    const fanout = await askAll(fakeProviders(async () => true, async () => true), 'eth_call', ask, asBool, { call: (m, o) => seen.push(`${m}:${o}`), head: () => {}, cache: () => {} });
    assert.equal(agreedAnswer('isGranted', fanout, 2, String), true);
    assert.deepEqual(seen, ['eth_call:ok', 'eth_call:ok']);
  });

  it('a malformed answer or a timeout counts as that provider failing; short of quorum is unavailable', async () => {
    const seen: string[] = [];
    const fanout = await askAll(fakeProviders(async () => false, async () => '0x01', () => Promise.reject(timeoutError())), 'eth_call', ask, asBool, { call: (_m, o) => seen.push(o), head: () => {}, cache: () => {} });
    assert.deepEqual(seen.sort(), ['ok', 'timeout', 'unavailable']);
    assert.equal(agreedAnswer('isGranted', fanout, 1, String), false, 'quorum 1: the one good answer counts');
    const message = unavailableMessage(() => agreedAnswer('isGranted', fanout, 2, String));
    assert.match(message, /1 of 3 RPC providers answered isGranted, 2 needed/);
    assert.match(message, /rpc\[1\] fake: unavailable/);
    assert.match(message, /rpc\[2\] fake: timeout/);
  });

  it('one dissenting provider voids the answer whatever the quorum', async () => {
    const fanout = await askAll(fakeProviders(async () => false, async () => false, async () => true), 'eth_call', ask, asBool);
    assert.match(unavailableMessage(() => agreedAnswer('isGranted', fanout, 1, String)), /disagree.*rpc\[2\] fake said true/);
  });
});
