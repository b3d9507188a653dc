import '../core/polyfills.ts';
import { ed25519 } from '@noble/curves/ed25519.js';
import { recoverSharedSecret, type WrappedPartial } from '../client/partials.ts';
import {
  bytesToHex,
  computeProvenPartial,
  decodePoint,
  decryptWithSharedSecretX,
  deriveHandle,
  eciesEncrypt,
  encodeDleqProof,
  encodeHandle,
  encodePoint,
  generateRsaKeyPair,
  importRsaPublicKey,
  isTkmsError,
  newRequestId,
  Point,
  randomBytes,
  rsaOaepWrap,
  utf8ToBytes,
} from '../core/index.ts';
import { DkgSession, type DkgOutbound } from '../core/dkg/index.ts';

/**
 * `npm start` until the devnet exists: the whole threshold decryption path in ONE process,
 * with no network. Every step is the real core code; the nodes are objects, not daemons.
 */
const T = 3;
const N = 5;
const KEY_ID = 'demo';
const say = (line = '') => console.log(line);
const short = (hex: string) => `${hex.slice(0, 18)}…${hex.slice(-6)}`;

say('tkms — in-process demo of threshold decryption (no network: nodes are objects in this process).');
say('The networked devnet (node daemons, gateway, client) replaces this demo in a later issue.\n');

// 1. DKG among 5 in-memory members, messages routed in memory.
const memberIds = Array.from({ length: N }, (_, i) => i + 1);
const signingKeys = new Map(memberIds.map((id) => [id, ed25519.utils.randomSecretKey()]));
const verifyKeys = new Map(memberIds.map((id) => [id, ed25519.getPublicKey(signingKeys.get(id)!)]));
const sessionId = randomBytes(16);
const sessions = new Map(
  memberIds.map((id) => [
    id,
    new DkgSession(
      { keyId: KEY_ID, committeeId: 'demo-committee', sessionId, t: T, memberIds, selfId: id },
      {
        sign: (msg) => ed25519.sign(msg, signingKeys.get(id)!),
        verify: (member, msg, sig) => {
          const pk = verifyKeys.get(member);
          try {
            return pk !== undefined && ed25519.verify(sig, msg, pk);
          } catch {
            return false;
          }
        },
      },
    ),
  ]),
);
const started = performance.now();
const queue: { from: number; out: DkgOutbound }[] = [];
for (const [id, s] of sessions) for (const out of s.start()) queue.push({ from: id, out });
for (let guard = 0; queue.length > 0 && guard < 100_000; guard++) {
  const { from, out } = queue.shift()!;
  const targets = out.to === 'all' ? memberIds.filter((id) => id !== from) : [out.to];
  for (const to of targets) for (const next of sessions.get(to)!.receive(from, out.payload)) queue.push({ from: to, out: next });
}
const results = [...sessions.values()].map((s) => s.result);
if (results.some((r) => r === undefined)) {
  const reasons = [...sessions.values()].map((s) => `${s.phase}${s.abortReason ? `: ${s.abortReason}` : ''}`);
  throw new Error(`demo DKG did not complete: ${reasons.join('; ')}`);
}
const result = results[0]!;
say(`1. DKG ${T}-of-${N} done in ${(performance.now() - started).toFixed(0)} ms; every member holds one share, none holds the key.`);
say(`   group public key ${short(result.groupPublicKey)}  transcript ${short(result.transcriptHash)}`);
const groupKey = decodePoint(result.groupPublicKey, 'group public key');
const verificationShares = new Map(Object.entries(result.verificationShares).map(([id, y]) => [Number(id), decodePoint(y)]));
const shares = new Map([...sessions].map(([id, s]) => [id, s.takeShare()]));

// 2. The owner encrypts to the network key (ECIES, spec wire format) and derives the handle.
const owner = randomBytes(20);
const message = 'Hello from tkms: only t of n nodes together can open this.';
const ct = await eciesEncrypt(groupKey, utf8ToBytes(message));
const handle = deriveHandle({ keyId: KEY_ID, K: ct.K, nonce: ct.nonce, ciphertext: ct.ciphertext, owner });
say(`2. Encrypted ${message.length} bytes: K ${short(bytesToHex(ct.K))} (33 B), nonce ${bytesToHex(ct.nonce)} (12 B), ciphertext ${ct.ciphertext.length} B`);
say(`   handle ${encodeHandle(handle)}`);

// 3. The requester makes an RSA-OAEP-2048 key; nodes answer with wrapped partials + DLEQ proofs.
const rsa = await generateRsaKeyPair(2048);
const requesterKey = await importRsaPublicKey(rsa.publicKey.spkiHex);
const requestId = newRequestId();
const K = Point.fromBytes(ct.K);
const answer = async (nodeId: number, tamper = false): Promise<WrappedPartial> => {
  const { partial, proof } = computeProvenPartial({ keyId: KEY_ID, nodeId, requestId }, shares.get(nodeId)!, verificationShares.get(nodeId)!, K);
  const sent = tamper ? partial.add(Point.BASE) : partial;
  return { nodeId, wrapped: await rsaOaepWrap(requesterKey, encodePoint(sent)), proof: encodeDleqProof(proof) };
};
say(`3. Requester RSA-OAEP-2048 key (SPKI ${rsa.publicKey.spkiHex.length / 2} B); nodes 2 (lying), 4, 5 and 1 answer.`);
const partials = [await answer(2, true), await answer(4), await answer(5), await answer(1)];

// 4. The client verifies every proof, names the liar, combines t valid partials and decrypts.
const recovered = await recoverSharedSecret({
  keyId: KEY_ID,
  requestId,
  K,
  t: T,
  verificationShares,
  partials,
  rsaPrivateKey: rsa.privateKey,
});
for (const r of recovered.rejected) say(`4. Rejected node ${r.nodeId}: ${r.code} — ${r.reason}`);
const plain = await decryptWithSharedSecretX(recovered.sharedSecretX, ct.nonce, ct.ciphertext);
recovered.sharedSecretX.fill(0);
say(`5. Combined partials of nodes ${recovered.usedNodeIds.join(', ')} → decrypted: "${new TextDecoder().decode(plain)}"`);

// 5. Fewer than t honest partials is not enough.
try {
  await recoverSharedSecret({ keyId: KEY_ID, requestId, K, t: T, verificationShares, partials: partials.slice(0, 3), rsaPrivateKey: rsa.privateKey });
  throw new Error('demo: decryption with t-1 valid partials should have failed');
} catch (err) {
  if (!isTkmsError(err, 'insufficient_partials')) throw err;
  say(`6. With one liar among three answers: refused — ${err.message}`);
}
say('\nRound trip complete.');
