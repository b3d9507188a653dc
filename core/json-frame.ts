import { TkmsError } from './errors.ts';

/**
 * Strict parsing of one JSON object per protocol frame, shared by every libp2p protocol:
 * bounded size, fatal UTF-8, an object at the top, and an exact set of fields.
 */
const decoder = new TextDecoder('utf-8', { fatal: true });

export function parseJsonFrame(bytes: Uint8Array, what: string, maxBytes: number): Record<string, unknown> {
  if (!(bytes instanceof Uint8Array)) throw new TkmsError('bad_request', `${what} must be bytes`);
  if (bytes.length > maxBytes) throw new TkmsError('payload_too_large', `${what} is larger than ${maxBytes} bytes`);
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(bytes));
  } catch {
    throw new TkmsError('bad_request', `${what} is not UTF-8 JSON`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new TkmsError('bad_request', `${what} must be a JSON object`);
  return json as Record<string, unknown>;
}

/** A plain JSON object with exactly `fields`, for nested message objects. */
export function expectObject(value: unknown, what: string, fields: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TkmsError('bad_request', `${what} must be a JSON object`);
  const obj = value as Record<string, unknown>;
  requireExactFields(obj, what, fields);
  return obj;
}

export function requireExactFields(obj: Record<string, unknown>, what: string, fields: readonly string[]): void {
  for (const k of Object.keys(obj)) if (!fields.includes(k)) throw new TkmsError('bad_request', `${what} has an unexpected field "${k}"`);
  for (const f of fields) if (!(f in obj)) throw new TkmsError('bad_request', `${what} is missing the field "${f}"`);
}
