import assert from 'node:assert/strict';
import type { PublicClient } from 'viem';
import { agreedAnswer, askAll, classifyRpcError, createProviders, type RpcProvider } from '../../chain/rpc-quorum.ts';
import { isTkmsError } from '../../core/index.ts';

/**
 * The fan-out over RPC providers, with fake clients standing in for the network: malformed
 * answers count as failures, a timeout is told apart from other failures, a dissent voids the
 * answer, and messages name providers by index only (hosts are for logs; URLs often carry API keys).
 */
function fakeProviders(...answers: (() => Promise<unknown>)[]): RpcProvider[] {
  return answers.map((answer, i) => ({ name: `rpc[${i}]`, host: 'fake', client: { answer } as unknown as PublicClient }));
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
  it('names providers by index only; the host (never path or credentials) is kept apart, for logs', () => {
    const providers = createProviders(['https://user:secret@rpc.example.org/v3/APIKEY123', 'http://127.0.0.1:8545', 'not a url'], 1_000);
    assert.deepEqual(
      providers.map((p) => [p.name, p.host]),
      [
        ['rpc[0]', 'rpc.example.org'],
        ['rpc[1]', '127.0.0.1:8545'],
        ['rpc[2]', '?'],
      ],
    );
  });

  it('errors name providers as rpc[i] and never carry a host', async () => {
    const providers = createProviders(['http://127.0.0.1:9/secret-path', 'http://127.0.0.1:9/other'], 1_000).map((p, i) => ({ ...p, client: { answer: i === 0 ? async () => true : () => Promise.reject(new Error('connection refused')) } as unknown as PublicClient }));
    const oneFailed = await askAll(providers, 'eth_call', ask, asBool);
    const short = unavailableMessage(() => agreedAnswer('isGranted', oneFailed, 2, String));
    assert.match(short, /rpc\[1\]: unavailable/);
    const lying = providers.map((p) => ({ ...p, client: { answer: async () => p.name === 'rpc[0]' } as unknown as PublicClient }));
    const split = await askAll(lying, 'eth_call', ask, asBool);
    const disagree = unavailableMessage(() => agreedAnswer('isGranted', split, 1, String));
    assert.match(disagree, /rpc\[0\] said true, rpc\[1\] said false/);
    for (const message of [short, disagree]) assert.doesNotMatch(message, /127\.0\.0\.1|secret|other/);
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
    assert.match(message, /rpc\[1\]: unavailable/);
    assert.match(message, /rpc\[2\]: timeout/);
  });

  it('one dissenting provider voids the answer whatever the quorum', async () => {
    const fanout = await askAll(fakeProviders(async () => false, async () => false, async () => true), 'eth_call', ask, asBool);
    assert.match(unavailableMessage(() => agreedAnswer('isGranted', fanout, 1, String)), /disagree.*rpc\[2\] said true/);
  });
});
