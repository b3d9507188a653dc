import assert from 'node:assert/strict';
import type { Stream } from '@libp2p/interface';
import { isTkmsError } from '../../core/index.ts';
import { encodeLength, FrameReader } from '../../net/frame-reader.ts';
import { ReadBudget } from '../../net/read-budget.ts';

/** The frame reader's accounting, on a stand-in stream that delivers chunks as a muxer would. */
class FakeStream extends EventTarget {
  aborted: Error | undefined;
  status = 'open';
  push(bytes: Uint8Array): void {
    const evt = new Event('message') as Event & { data: Uint8Array };
    evt.data = bytes;
    this.dispatchEvent(evt);
  }
  end(): void {
    this.dispatchEvent(new Event('remoteCloseWrite'));
  }
  abort(err: Error): void {
    this.aborted ??= err;
    this.status = 'aborted';
  }
}

function setup(perPeer: number, total = perPeer): { stream: FakeStream; budget: ReadBudget; reader: FrameReader } {
  const stream = new FakeStream();
  const budget = new ReadBudget(perPeer, total);
  const reader = new FrameReader(stream as unknown as Stream, 1024 * 1024, { take: (n) => budget.take('p', n), give: (n) => budget.give('p', n) });
  return { stream, budget, reader };
}

const frame = (body: Uint8Array): Uint8Array => Uint8Array.from([...encodeLength(body.length), ...body]);

describe('frame reader: bytes held against a read budget', () => {
  it('charges a frame\'s whole declared length when its prefix arrives, and refuses it before its body comes', () => {
    const { stream, budget } = setup(1_000);
    stream.push(encodeLength(998)); // 2-byte prefix + 998 = 1000: fits exactly
    assert.equal(budget.held, 1_000);
    assert.equal(stream.aborted, undefined);
    const other = setup(999);
    other.stream.push(encodeLength(998));
    assert.ok(other.stream.aborted !== undefined, 'a frame larger than the budget is refused at its prefix');
    assert.equal(other.budget.held, 0);
  });

  it('one-byte chunks are charged for their objects (128 bytes each), not just their bytes', () => {
    const { stream, budget } = setup(64 * 1024);
    stream.push(encodeLength(1_000)); // a small frame, sent one byte at a time
    let sent = 0;
    while (stream.aborted === undefined && sent < 1_000) {
      stream.push(Uint8Array.of(0x20));
      sent++;
    }
    assert.ok(stream.aborted !== undefined && sent < 1_000, `${sent} one-byte chunks were buffered`);
    assert.ok(sent <= (64 * 1024) / 128, `${sent} chunks for a 64 KiB budget`);
    assert.equal(budget.held, 0);
  });

  it('a frame read stays charged until released; the stream\'s end gives everything back', async () => {
    const { stream, budget, reader } = setup(10_000);
    const body = new TextEncoder().encode('{"v":1}');
    stream.push(frame(body));
    const got = await reader.read(1_000, 1_000);
    assert.deepEqual(got, body);
    assert.equal(budget.held, body.length + 1);
    reader.release();
    assert.equal(budget.held, 0);
    stream.push(encodeLength(500));
    assert.equal(budget.held, 502);
    reader.dispose();
    assert.equal(budget.held, 0);
  });

  it('frames before an impossible length prefix are answered first; then the prefix is refused', async () => {
    const { stream, budget, reader } = setup(10_000);
    stream.push(Uint8Array.from([...frame(Uint8Array.of(1, 2)), 0xff, 0xff, 0xff, 0xff, 0x0f]));
    assert.deepEqual(await reader.read(1_000, 1_000), Uint8Array.of(1, 2));
    reader.release();
    await assert.rejects(reader.read(1_000, 1_000), (e) => isTkmsError(e, 'bad_request'));
    reader.dispose();
    assert.equal(budget.held, 0);
  });

  it('a frame whose body is slower than its deadline times out; a clean end between frames is not an error', async () => {
    const slow = setup(10_000);
    slow.stream.push(encodeLength(100));
    await assert.rejects(slow.reader.read(5_000, 50), (e) => isTkmsError(e, 'timeout'));
    const done = setup(10_000);
    done.stream.end();
    assert.equal(await done.reader.read(1_000, 1_000), undefined);
  });
});
