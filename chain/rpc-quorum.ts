import { createPublicClient, http, type PublicClient } from 'viem';
import { TkmsError } from '../core/errors.ts';
import { agree } from './block-policy.ts';
import type { ChainMetricsSink } from './chain-acl.ts';

/**
 * One viem public client per configured RPC URL, and the fan-out that asks all of them the same
 * thing and accepts an answer only when enough of them answered and all of them agree.
 * Providers are named by index only (rpc[i]) in everything that can leave the process: errors
 * travel in wire messages to peers and clients, and an operator's provider hosts are theirs to
 * know. The host (never the path or credentials, which often hold an API key) is for logs.
 */

/** not_found: the provider answered that the block asked for does not exist (on its chain). */
export type RpcOutcome = 'ok' | 'timeout' | 'not_found' | 'unavailable';

export interface RpcProvider {
  /** "rpc[1]": the only name that may appear in errors and answers. */
  name: string;
  /** "host:port" of the URL, for this process's logs only. */
  host: string;
  client: PublicClient;
}

export function createProviders(rpcUrls: readonly string[], timeoutMs: number): RpcProvider[] {
  return rpcUrls.map((url, i) => ({
    name: `rpc[${i}]`,
    host: safeHost(url),
    // No retries: a retry would stretch one call past rpcTimeoutMs, and a failed provider is
    // already covered by the quorum (or by refusing, which the caller may retry).
    client: createPublicClient({ transport: http(url, { retryCount: 0, timeout: timeoutMs }) }),
  }));
}

function safeHost(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '?';
  }
}

/** Names of viem errors that mean "the contract is not what we expect", as opposed to "the RPC failed". */
const NOT_OUR_CONTRACT = new Set(['ContractFunctionRevertedError', 'ContractFunctionZeroDataError', 'AbiDecodingZeroDataError', 'AbiDecodingDataSizeTooSmallError']);

function errorNames(error: unknown): string[] {
  const names: string[] = [];
  for (let e = error, depth = 0; e instanceof Error && depth < 8; e = (e as { cause?: unknown }).cause, depth++) names.push(e.name);
  return names;
}

export function classifyRpcError(error: unknown): { outcome: RpcOutcome; notOurContract: boolean } {
  const names = errorNames(error);
  const outcome: RpcOutcome = names.includes('TimeoutError') ? 'timeout' : names.includes('BlockNotFoundError') ? 'not_found' : 'unavailable';
  return { outcome, notOurContract: names.some((n) => NOT_OUR_CONTRACT.has(n)) };
}

export interface ProviderFailure {
  provider: string;
  outcome: RpcOutcome;
  notOurContract: boolean;
}

export interface Fanout<T> {
  answers: { provider: string; value: T }[];
  failures: ProviderFailure[];
}

/**
 * Asks every provider; each answer passes `validate` (a malformed answer counts as that provider
 * failing). Every provider is waited for, bounded by the transport timeout, because agreement is
 * judged over all answers: returning at the first `quorum` would let a lying provider that is
 * merely slower go unnoticed.
 */
export async function askAll<T>(providers: readonly RpcProvider[], method: string, ask: (client: PublicClient) => Promise<unknown>, validate: (raw: unknown) => T | undefined, metrics?: ChainMetricsSink): Promise<Fanout<T>> {
  const settled = await Promise.all(
    providers.map(async (p) => {
      const started = performance.now();
      try {
        const value = validate(await ask(p.client));
        metrics?.call(method, value === undefined ? 'unavailable' : 'ok', (performance.now() - started) / 1000);
        return value === undefined ? { provider: p.name, failure: { provider: p.name, outcome: 'unavailable' as const, notOurContract: false } } : { provider: p.name, value };
      } catch (error) {
        const c = classifyRpcError(error);
        metrics?.call(method, c.outcome, (performance.now() - started) / 1000);
        return { provider: p.name, failure: { provider: p.name, ...c } };
      }
    }),
  );
  const answers: { provider: string; value: T }[] = [];
  const failures: ProviderFailure[] = [];
  for (const s of settled) {
    if ('failure' in s && s.failure !== undefined) failures.push(s.failure);
    else answers.push({ provider: s.provider, value: (s as { value: T }).value });
  }
  return { answers, failures };
}

/** The one agreed answer, or TkmsError('unavailable') that says which providers failed or disagreed. */
export function agreedAnswer<T>(what: string, fanout: Fanout<T>, quorum: number, key: (value: T) => string): T {
  const verdict = agree(
    fanout.answers.map((a) => a.value),
    quorum,
    key,
  );
  if (verdict.ok) return verdict.value;
  const failed = fanout.failures.map((f) => `${f.provider}: ${f.outcome}`).join(', ');
  if (verdict.reason === 'disagree') {
    const said = fanout.answers.map((a) => `${a.provider} said ${key(a.value)}`).join(', ');
    throw new TkmsError('unavailable', `RPC providers disagree on ${what} (${said}); refusing rather than trusting either`);
  }
  throw new TkmsError('unavailable', `${fanout.answers.length} of ${fanout.answers.length + fanout.failures.length} RPC providers answered ${what}, ${quorum} needed (${failed})`);
}
