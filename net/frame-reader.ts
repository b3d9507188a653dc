import type { Stream } from '@libp2p/interface';
import { TkmsError } from '../core/index.ts';

/** Takes bytes from a budget before they are kept (false: refused), and gives them back. */
export interface ByteCharge {
  take(bytes: number): boolean;
  give(bytes: number): void;
}

/**
 * What one buffered chunk costs beyond its bytes (the array object and its view), at most: a peer
 * sending one-byte chunks is charged for their objects, not just for their bytes.
 */
const CHUNK_OVERHEAD_BYTES = 128;

/** A varint length prefix longer than this declares more than any frame bound (2^28 bytes). */
const MAX_PREFIX_BYTES = 4;

/** Unsigned LEB128, as lpStream writes it. */
export function encodeLength(n: number): Uint8Array {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Uint8Array.from(out);
}

/**
 * Reads length-prefixed frames from a stream, holding every byte it keeps against a budget: the
 * whole declared frame is taken as soon as its length prefix arrives (before its body is read),
 * and bytes beyond it (a next frame sent early) as they arrive. A frame handed out stays charged
 * until `release()` (the caller is done with it). A refused charge, an oversized length, or a frame
 * body slower than its deadline ends the stream.
 */
export class FrameReader {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  /** Prefix plus body of the frame being read, once its prefix has arrived; else 0. */
  private frameEnd = 0;
  /** Bytes of frames handed out and not released. */
  private handedOut = 0;
  private charged = 0;
  private ended = false;
  private failure: Error | undefined;
  /** A length prefix that can never be valid; raised when the reader gets to it (after the frames before it). */
  private badPrefix: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly stream: Stream,
    private readonly maxFrameBytes: number,
    private readonly charge: ByteCharge,
  ) {
    stream.addEventListener('message', this.onMessage);
    stream.addEventListener('remoteCloseWrite', this.onEnd);
    stream.addEventListener('close', this.onEnd);
  }

  private readonly onMessage = (evt: { data: Uint8Array | { subarray(): Uint8Array } }): void => {
    if (this.failure !== undefined) return;
    const bytes = evt.data instanceof Uint8Array ? evt.data : evt.data.subarray();
    this.chunks.push(bytes);
    this.buffered += bytes.byteLength;
    if (this.frameEnd === 0) this.parsePrefix();
    this.recharge();
    this.notify();
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    this.notify();
  };

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private fail(err: Error): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    this.chunks = [];
    this.buffered = 0;
    this.frameEnd = 0;
    this.recharge();
    this.stream.abort(err);
  }

  /** Brings the charge to what is held: handed-out frames plus the larger of the buffer (with its chunks' overhead) and the frame in progress. */
  private recharge(): void {
    // Bytes and per-chunk overhead are each bounded by the larger, so memory is at most twice the charge.
    const held = Math.max(this.buffered, this.chunks.length * CHUNK_OVERHEAD_BYTES);
    const want = this.failure === undefined ? this.handedOut + Math.max(held, this.frameEnd) : this.handedOut;
    const delta = want - this.charged;
    if (delta > 0) {
      if (!this.charge.take(delta)) {
        this.fail(new TkmsError('unavailable', 'read budget exhausted'));
        return;
      }
    } else if (delta < 0) this.charge.give(-delta);
    this.charged = want;
  }

  private parsePrefix(): void {
    if (this.badPrefix !== undefined) return;
    let value = 0;
    let i = 0;
    for (const chunk of this.chunks) {
      for (const b of chunk) {
        value += (b & 0x7f) * 2 ** (7 * i);
        i++;
        if (value > this.maxFrameBytes) {
          this.badPrefix = new TkmsError('bad_request', `frame is larger than ${this.maxFrameBytes} bytes`);
          return;
        }
        if ((b & 0x80) === 0) {
          this.frameEnd = i + value;
          return;
        }
        if (i >= MAX_PREFIX_BYTES) {
          this.badPrefix = new TkmsError('bad_request', 'frame length prefix too long');
          return;
        }
      }
    }
  }

  /** Removes the first `n` buffered bytes and returns them as one array. */
  private consume(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      const chunk = this.chunks[0]!;
      const take = Math.min(chunk.byteLength, n - at);
      out.set(chunk.subarray(0, take), at);
      at += take;
      if (take === chunk.byteLength) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(take);
    }
    this.buffered -= n;
    return out;
  }

  /**
   * The next frame's body, or undefined when the stream ended cleanly between frames. Waits up
   * to `idleMs` for a frame to start; once its length prefix is in, its body gets `frameMs`.
   */
  async read(idleMs: number, frameMs: number): Promise<Uint8Array | undefined> {
    let deadline = Date.now() + idleMs;
    let started = false;
    for (;;) {
      if (this.failure !== undefined) throw this.failure;
      if (this.frameEnd === 0 && this.badPrefix !== undefined) throw this.badPrefix;
      if (this.frameEnd > 0 && !started) {
        started = true;
        deadline = Math.min(deadline, Date.now() + frameMs);
      }
      if (this.frameEnd > 0 && this.buffered >= this.frameEnd) {
        const frame = this.consume(this.frameEnd);
        this.handedOut += frame.byteLength;
        this.frameEnd = 0;
        this.parsePrefix();
        this.recharge();
        return frame.subarray(frame.byteLength - this.bodyLength(frame));
      }
      if (this.ended) {
        if (this.buffered === 0) return undefined;
        throw new TkmsError('bad_request', 'stream ended inside a frame');
      }
      const waitMs = deadline - Date.now();
      if (waitMs <= 0) throw new TkmsError('timeout', 'no whole frame in time');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, waitMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Body length of a whole frame (its prefix re-read). */
  private bodyLength(frame: Uint8Array): number {
    let value = 0;
    for (let i = 0; ; i++) {
      value += (frame[i]! & 0x7f) * 2 ** (7 * i);
      if ((frame[i]! & 0x80) === 0) return value;
    }
  }

  /** The frames handed out are done with: their bytes go back to the budget. */
  release(): void {
    this.handedOut = 0;
    this.recharge();
  }

  /** Stops reading and gives every byte back. */
  dispose(): void {
    this.stream.removeEventListener('message', this.onMessage as never);
    this.stream.removeEventListener('remoteCloseWrite', this.onEnd);
    this.stream.removeEventListener('close', this.onEnd);
    this.chunks = [];
    this.buffered = 0;
    this.frameEnd = 0;
    this.handedOut = 0;
    if (this.charged > 0) this.charge.give(this.charged);
    this.charged = 0;
    this.notify();
  }
}
