import type { GrantSource } from '../core/authz.ts';

/** The parts of an `acl` config group the cross-field checks read (node and gateway alike). */
export interface AclConfigShape {
  mode: GrantSource;
  chain?: { rpcUrls: readonly string[]; quorum?: number };
}

/**
 * What the schema cannot say field by field: a mode that reads the chain needs `acl.chain`, and a
 * quorum cannot ask for more answers than there are providers.
 */
export function aclConfigProblems(acl: AclConfigShape | undefined): string[] {
  if (acl === undefined) return [];
  const problems: string[] = [];
  if (acl.mode !== 'signed' && acl.chain === undefined) {
    problems.push(`acl.chain is required when acl.mode is "${acl.mode}" (chainId, contract, rpcUrls): or set acl.mode to "signed"`);
  }
  const chain = acl.chain;
  if (chain?.quorum !== undefined && chain.quorum > chain.rpcUrls.length) {
    problems.push(`acl.chain.quorum (${chain.quorum}) must be at most the number of acl.chain.rpcUrls (${chain.rpcUrls.length})`);
  }
  return problems;
}
