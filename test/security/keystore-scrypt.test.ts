import assert from 'node:assert/strict';
import { chmod, cp, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_SCRYPT_PARAMS } from '../../node/keystore-crypto.ts';
import { Keystore } from '../../node/keystore.ts';
import { makeTempDir, REPO_ROOT, removeDir } from '../support/processes.ts';

/**
 * Finding 11(a): a stolen keystore is attacked offline, one scrypt per guessed password, so its
 * cost is the only bound. New keystores use N = 2^17 (4× the work and memory of 2^15 per guess);
 * keystores written with N = 2^15 (by 70e9873, test/fixtures/keystore-70e9873) still open,
 * because the header stores its parameters.
 */
async function kdfN(dir: string): Promise<number> {
  return (JSON.parse(await readFile(join(dir, 'keystore.json'), 'utf8')) as { kdf: { N: number } }).kdf.N;
}

async function timeOpen(dir: string, password: string): Promise<number> {
  const start = performance.now();
  (await Keystore.open(dir, password)).close();
  return performance.now() - start;
}

describe('attack: guess a stolen keystore\'s password offline (scrypt cost)', function () {
  this.timeout(60_000);
  let root: string | undefined;

  before(async () => {
    root = await makeTempDir('tkms-scrypt');
  });

  after(async () => {
    await removeDir(root);
  });

  it('a new keystore gets N = 2^17 by default, and one written with N = 2^15 by 70e9873 still opens', async function () {
    assert.equal(DEFAULT_SCRYPT_PARAMS.N, 2 ** 17);
    const fresh = join(root!, 'fresh');
    (await Keystore.open(fresh, 'a new password')).close();
    assert.equal(await kdfN(fresh), 2 ** 17);

    const fixture = join(REPO_ROOT, 'test/fixtures/keystore-70e9873');
    const old = join(root!, 'old');
    await cp(join(fixture, 'node1/keystore'), old, { recursive: true });
    await chmod(old, 0o700);
    for (const f of await readdir(old)) await chmod(join(old, f), 0o600);
    assert.equal(await kdfN(old), 2 ** 15);
    const password = (await readFile(join(fixture, 'keystore-password'), 'utf8')).trim();
    const keystore = await Keystore.open(old, password);
    try {
      assert.deepEqual(keystore.list(), ['legacy']);
      assert.ok((await keystore.load('legacy')).share > 0n);
    } finally {
      keystore.close();
    }
    await assert.rejects(Keystore.open(old, 'not the password'), /keystore/);

    const newMs = await timeOpen(fresh, 'a new password');
    const oldMs = await timeOpen(old, password);
    this.test!.title += ` (open: ${oldMs.toFixed(0)} ms at 2^15, ${newMs.toFixed(0)} ms at 2^17)`;
  });

  it('tests that make many keystores may ask for cheaper parameters explicitly', async () => {
    const cheap = join(root!, 'cheap');
    (await Keystore.open(cheap, 'pw', { newKeystoreScrypt: { N: 2 ** 14, r: 8, p: 1 } })).close();
    assert.equal(await kdfN(cheap), 2 ** 14);
    (await Keystore.open(cheap, 'pw')).close();
  });
});
