import { bytesToHex } from './bytes.ts';
import { tkmsDomain, type Deployment } from './authz.ts';
import type { Eip712Domain, Eip712Struct, Eip712Value } from './eip712.ts';
import { TkmsError } from './errors.ts';

/**
 * The JSON a wallet signs with `eth_signTypedData_v4` (EIP-712 "typed data"), built from the
 * struct declarations in core/authz.ts and the deployment's domain, so a wallet, ethers, viem
 * and our own hashing (core/eip712.ts) all sign the same digest. Bytes and addresses are
 * 0x hex; uint64 values are JSON numbers (every timestamp is a safe integer), which
 * eth_signTypedData_v4, ethers and viem all take.
 */
export interface TypedDataField {
  name: string;
  type: string;
}

export interface TypedDataDomain {
  name: string;
  version: string;
  chainId?: number | string;
  salt?: string;
}

export type TypedDataValue = string | number;

export interface TypedData {
  types: { EIP712Domain: TypedDataField[] } & Record<string, TypedDataField[]>;
  primaryType: string;
  domain: TypedDataDomain;
  message: Record<string, TypedDataValue>;
}

/** A uint in JSON: a number while exact, else a decimal string (eth_signTypedData_v4 takes both). */
function uintJson(value: bigint | number, name: string): number | string {
  const big = typeof value === 'bigint' ? value : BigInt(value);
  if (big < 0n) throw new TkmsError('bad_request', `${name} must not be negative`);
  return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big.toString();
}

function valueJson(struct: Eip712Struct, field: Eip712Struct['fields'][number], value: Eip712Value | undefined): TypedDataValue {
  const where = `${struct.name}.${field.name}`;
  switch (field.type) {
    case 'string':
      if (typeof value !== 'string') throw new TkmsError('bad_request', `${where} must be a string`);
      return value;
    case 'uint64':
      if (typeof value !== 'bigint' && typeof value !== 'number') throw new TkmsError('bad_request', `${where} must be an integer`);
      return uintJson(value, where);
    default:
      if (!(value instanceof Uint8Array)) throw new TkmsError('bad_request', `${where} must be bytes`);
      return `0x${bytesToHex(value)}`;
  }
}

/** The EIP712Domain type lists chainId and salt only when present, as core/eip712.ts hashes it. */
function domainJson(domain: Eip712Domain): { fields: TypedDataField[]; value: TypedDataDomain } {
  const fields: TypedDataField[] = [
    { name: 'name', type: 'string' },
    { name: 'version', type: 'string' },
  ];
  const value: TypedDataDomain = { name: domain.name, version: domain.version };
  if (domain.chainId !== undefined) {
    fields.push({ name: 'chainId', type: 'uint256' });
    value.chainId = uintJson(domain.chainId, 'chainId');
  }
  if (domain.salt !== undefined) {
    fields.push({ name: 'salt', type: 'bytes32' });
    value.salt = `0x${bytesToHex(domain.salt)}`;
  }
  return { fields, value };
}

/** Typed data for any flat struct of core/eip712.ts under any domain. */
export function typedData(domain: Eip712Domain, struct: Eip712Struct, message: Record<string, Eip712Value>): TypedData {
  const { fields, value } = domainJson(domain);
  return {
    types: { EIP712Domain: fields, [struct.name]: struct.fields.map((f) => ({ name: f.name, type: f.type })) },
    primaryType: struct.name,
    domain: value,
    message: Object.fromEntries(struct.fields.map((f) => [f.name, valueJson(struct, f, message[f.name])])),
  };
}

/**
 * The signed fields of a message object (an UnsignedGrant, UnsignedDelegation, …): exactly the
 * struct's fields, so what is signed is what the gateway and the nodes rebuild and verify.
 */
export function structMessage(struct: Eip712Struct, value: object): Record<string, Eip712Value> {
  const source = value as Record<string, Eip712Value | undefined>;
  const out: Record<string, Eip712Value> = {};
  for (const f of struct.fields) {
    const v = source[f.name];
    if (v === undefined) throw new TkmsError('bad_request', `${struct.name}.${f.name} is missing`);
    out[f.name] = v;
  }
  return out;
}

/** Typed data of a tkms request for a deployment (domain: tkmsDomain). */
export function tkmsTypedData(struct: Eip712Struct, value: object, deployment: Deployment): TypedData {
  return typedData(tkmsDomain(deployment), struct, structMessage(struct, value));
}
