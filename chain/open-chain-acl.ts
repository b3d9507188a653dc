import type { GrantSource } from '../core/authz.ts';
import { isTkmsError, TkmsError } from '../core/errors.ts';
import type { ServiceRunner } from '../runtime/lifecycle.ts';
import type { Logger } from '../runtime/logger.ts';
import { createChainAclReader, type ChainAclReaderOptions } from './acl-reader.ts';
import type { ChainAcl, ChainMetricsSink } from './chain-acl.ts';

/** The `acl` config group of a node or a gateway, as far as starting the reader goes. */
export interface AclGroup {
  mode: GrantSource;
  /** Extra fields (the gateway's confirmations) are the caller's and are not read here. */
  chain?: Omit<ChainAclReaderOptions, 'metrics' | 'log'>;
}

/** What a process reads grants from once started: no chain in mode signed, a started reader otherwise. */
export type OpenedAcl = { mode: 'signed'; chain?: undefined } | { mode: Exclude<GrantSource, 'signed'>; chain: ChainAcl };

/**
 * A listing starting at block 0 on a chain this long scans every block ever made for Granted
 * events: slow on a public chain, and likely a forgotten acl.chain.fromBlock.
 */
export const FROM_BLOCK_ZERO_WARN_HEAD = 100_000;

/**
 * The reader of `acl.chain`, started and registered as the service "chain acl" of `services`
 * (stopped with them), unless mode is signed. Start checks the chain id, contract code and
 * version; a failure keeps its code (chain_mismatch, unavailable) and names the chain and
 * contract, so the process refuses to start (fail closed) like on any other start failure.
 */
export async function openChainAcl(
  acl: AclGroup,
  deps: { services: ServiceRunner; metrics: ChainMetricsSink; log: Logger; /** Default FROM_BLOCK_ZERO_WARN_HEAD. */ fromBlockZeroWarnHead?: number },
): Promise<OpenedAcl> {
  const { mode, chain } = acl;
  const { log } = deps;
  if (mode === 'signed') {
    if (chain !== undefined) log.warn({ chainId: chain.chainId, contract: chain.contract }, 'acl.chain is configured but acl.mode is "signed": it is ignored, no chain is read (set acl.mode to "chain" or "either" to use it)');
    return { mode };
  }
  // Config parsing refuses this; never fall back to signed grants when the chain was asked for.
  if (chain === undefined) throw new TkmsError('bad_request', `acl.mode is ${mode} but acl.chain is not configured`);
  const reader = await deps.services.open('chain acl', () => startReader(chain, deps.metrics, log), (r) => r.stop());
  if (chain.fromBlock !== undefined && chain.fromBlock > 0) await refuseFromBlockPastHead(reader, chain.fromBlock);
  if (chain.fromBlock === 0) await warnFromBlockZero(reader, deps.fromBlockZeroWarnHead ?? FROM_BLOCK_ZERO_WARN_HEAD, log);
  return { mode, chain: reader };
}

async function startReader(chain: NonNullable<AclGroup['chain']>, metrics: ChainMetricsSink, log: Logger): Promise<ChainAcl> {
  const reader = createChainAclReader({ ...chain, metrics, log });
  try {
    await reader.start();
  } catch (e) {
    await reader.stop().catch(() => undefined);
    const err = isTkmsError(e) ? e : new TkmsError('unavailable', e instanceof Error ? e.message : String(e));
    log.error({ err, code: err.code, chainId: chain.chainId, contract: chain.contract }, `cannot start the on-chain ACL (acl.chain): ${err.message}; refusing to start`);
    throw new TkmsError(err.code, `on-chain ACL (acl.chain, chain ${chain.chainId}, contract ${chain.contract}): ${err.message}`);
  }
  log.info({ chainId: chain.chainId, contract: chain.contract, providers: chain.rpcUrls.length, quorum: chain.quorum ?? chain.rpcUrls.length }, 'on-chain ACL ready');
  return reader;
}

/**
 * The gateway names no block older than fromBlock (the contract's deployment block), so a fromBlock
 * past the head would make it name blocks the chain has not reached, and every request fail: a
 * mistyped config, refused at start rather than as a 503 on every decrypt.
 */
async function refuseFromBlockPastHead(reader: ChainAcl, fromBlock: number): Promise<void> {
  const head = (await reader.head()).block;
  if (fromBlock > head) {
    throw new TkmsError('chain_mismatch', `acl.chain.fromBlock is ${fromBlock}, past the chain's head ${head}: set it to the block the TkmsAcl contract was deployed at`);
  }
}

async function warnFromBlockZero(reader: ChainAcl, warnHead: number, log: Logger): Promise<void> {
  let head: number;
  try {
    head = (await reader.head()).block;
  } catch {
    // The head is checked on every request; a start-up hint is not worth failing for.
    return;
  }
  if (head >= warnHead) {
    log.warn({ head, fromBlock: 0 }, `acl.chain.fromBlock is 0 on a chain at block ${head}: grant listings scan every block from 0; set it to the block the TkmsAcl contract was deployed at`);
  }
}
