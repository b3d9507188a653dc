import { Type } from 'typebox';
import { GRANT_SOURCES } from '../core/authz.ts';
import { field, FieldProblem } from './config-schema.ts';
import { isJsonRpcUrl } from '../chain/chain-acl.ts';

/**
 * `acl`: where grants come from, one declaration the node and the gateway share (docs/operators.md
 * "On-chain ACL"). `mode` is per deployment: give the gateway and every node the same one.
 *   signed  owner-signed grants only (the default, and today's behaviour)
 *   chain   grants in the TkmsAcl contract only; signed grants are refused
 *   either  a valid signed grant, or else an on-chain grant
 * Each operator names its own RPC providers: with one provider shared by all nodes, that provider
 * alone could answer "granted" to everything. The modes are core's GRANT_SOURCES (core/authz.ts).
 */

const MAX_RPC_URLS = 8;

function decodeRpcUrls(urls: string[]): string[] {
  const lines: string[] = [];
  for (const [i, text] of urls.entries()) if (!isJsonRpcUrl(text)) lines.push(`{path}[${i}] must be an http:// or https:// JSON-RPC URL`);
  if (lines.length > 0) throw new FieldProblem(...lines);
  return urls;
}

/** Fields both processes read. */
const sharedChainFields = () => ({
  chainId: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'chain id the contract lives on; the process refuses to start when its RPC reports another', env: 'TKMS_ACL_CHAIN_ID' }),
  contract: Type.String({
    pattern: '^0x[0-9a-fA-F]{40}$',
    description: 'address of the TkmsAcl contract (contracts/TkmsAcl.sol); code and VERSION() are checked at start',
    env: 'TKMS_ACL_CONTRACT',
    mustBe: 'a 0x-prefixed 20-byte hex address',
  }),
  rpcUrls: Type.Decode(
    Type.Array(Type.String({ maxLength: 2048 }), {
      minItems: 1,
      maxItems: MAX_RPC_URLS,
      description: 'this operator\'s own JSON-RPC endpoints; never one provider shared by every node',
      env: 'TKMS_ACL_RPC_URLS',
      mustBe: `an array of 1 to ${MAX_RPC_URLS} http(s) URLs`,
    }),
    decodeRpcUrls,
  ),
  quorum: Type.Optional(
    field.integer(1, MAX_RPC_URLS, 1, {
      description: 'how many of rpcUrls must answer, all alike, for an answer to count; any disagreement is "unavailable"',
      env: 'TKMS_ACL_RPC_QUORUM',
      defaultText: 'every URL in rpcUrls',
    }),
  ),
  rpcTimeoutMs: field.integer(100, 60_000, 3_000, { description: 'how long one JSON-RPC call may take before it counts as failed', env: 'TKMS_ACL_RPC_TIMEOUT_MS', unit: 'milliseconds' }),
  pollIntervalMs: field.integer(100, 60_000, 1_000, { description: 'how often the head block is read', env: 'TKMS_ACL_POLL_INTERVAL_MS', unit: 'milliseconds' }),
  maxHeadAgeSeconds: field.integer(1, 86_400, 120, {
    description: 'refuse (unavailable) while the newest block is older than this: a stuck provider must not freeze the ACL in the past',
    env: 'TKMS_ACL_MAX_HEAD_AGE_SECONDS',
    unit: 'seconds',
  }),
});

/** The node's `acl.chain`: it evaluates at the gateway's block B, within maxBlockLag of its own head. */
const nodeChainFields = () => ({
  ...sharedChainFields(),
  maxBlockLag: field.integer(0, 100_000, 32, {
    description: 'the oldest block B a request may name, in blocks behind this node\'s head (acl_block_too_old beyond); keep it below 128, as providers without archive state answer only for recent blocks',
    env: 'TKMS_ACL_MAX_BLOCK_LAG',
    unit: 'blocks',
  }),
  aheadWaitMs: field.integer(0, 60_000, 2_000, {
    description: 'how long to wait for this node\'s RPC to reach a block B ahead of its head before refusing (acl_block_ahead)',
    env: 'TKMS_ACL_AHEAD_WAIT_MS',
    unit: 'milliseconds',
  }),
});

/** The gateway's `acl.chain`: it names B = its head − confirmations for every request. */
const gatewayChainFields = () => ({
  ...sharedChainFields(),
  confirmations: field.integer(0, 10_000, 2, {
    description: 'blocks a grant must be buried under before it counts: B = head − confirmations (a revocation binds at once); keep it below the nodes\' maxBlockLag',
    env: 'TKMS_ACL_CONFIRMATIONS',
    unit: 'blocks',
  }),
  fromBlock: field.integer(0, Number.MAX_SAFE_INTEGER, 0, {
    description: 'the block the contract was deployed at: grant listings read events from there',
    env: 'TKMS_ACL_FROM_BLOCK',
  }),
});

const modeField = () =>
  field.oneOf(GRANT_SOURCES, 'signed', {
    description: 'where grants come from: signed (owner-signed grants), chain (the TkmsAcl contract only) or either; the same for the gateway and every node',
    env: 'TKMS_ACL_MODE',
  });

const chainGroupNotes = { description: 'the on-chain ACL (required unless mode is "signed")' };

export const nodeAclField = () =>
  field.group({ mode: modeField(), chain: Type.Optional(field.group(nodeChainFields(), chainGroupNotes)) }, { description: 'who may decrypt: signed grants, the on-chain ACL, or either' });

export const gatewayAclField = () =>
  field.group({ mode: modeField(), chain: Type.Optional(field.group(gatewayChainFields(), chainGroupNotes)) }, { description: 'who may decrypt: signed grants, the on-chain ACL, or either' });
