import { encodeDkgReply } from './dkg-wire.ts';

/**
 * /tkms/partial/1 is registered so peers can already negotiate it; computing partials
 * comes with the next issue. Until then every request gets a typed not_implemented reply.
 */
export const PARTIAL_PROTOCOL = '/tkms/partial/1';

export function partialStubReply(): Uint8Array {
  return encodeDkgReply({ ok: false, code: 'not_implemented', message: 'partial decryption is not implemented yet' });
}
