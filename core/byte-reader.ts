import { TkmsError } from './errors.ts';

/**
 * Big-endian reads over a message's bytes for the strict binary decoders (core/dkg/codec.ts,
 * core/ceremony/codec.ts): every read checks the length first, and a short message is a typed
 * bad_length naming the field, never a RangeError or a silent undefined.
 */
export class ByteReader {
  protected offset = 0;
  constructor(
    protected readonly bytes: Uint8Array,
    protected readonly what: string,
  ) {}

  protected need(length: number, field: string): void {
    if (this.offset + length > this.bytes.length) throw new TkmsError('bad_length', `${this.what}: truncated at ${field}`);
  }
  u8(field: string): number {
    this.need(1, field);
    return this.bytes[this.offset++]!;
  }
  u16(field: string): number {
    this.need(2, field);
    const value = (this.bytes[this.offset]! << 8) | this.bytes[this.offset + 1]!;
    this.offset += 2;
    return value;
  }
  u32(field: string): number {
    this.need(4, field);
    const b = this.bytes;
    const o = this.offset;
    const value = b[o]! * 0x1000000 + ((b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!);
    this.offset += 4;
    return value;
  }
  take(length: number, field: string): Uint8Array {
    this.need(length, field);
    const out = this.bytes.slice(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }
  /** The message is read whole: trailing bytes are refused. */
  end(): void {
    if (this.offset !== this.bytes.length) throw new TkmsError('bad_length', `${this.what}: ${this.bytes.length - this.offset} trailing bytes`);
  }
}
