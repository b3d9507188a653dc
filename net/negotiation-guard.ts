import type { StreamMuxer, StreamMuxerFactory } from '@libp2p/interface';

/**
 * Bytes a remote peer may make this process hold on one stream before the stream's protocol is
 * chosen: a few full-length protocol names (libp2p allows 1 KiB each). Honest peers send two short
 * lines ("/multistream/1.0.0", the protocol) and wait for the answer before their first frame.
 */
export const NEGOTIATION_STREAM_BYTES = 4 * 1024;
/** The same over all of one connection's streams still negotiating. */
export const NEGOTIATION_CONNECTION_BYTES = 256 * 1024;

interface GuardedStream {
  protocol: string;
  onData(data: { byteLength: number }): void;
  abort(err: Error): void;
  addEventListener(type: 'close', listener: () => void, options?: { once?: boolean }): void;
}

interface RemoteStreamHook {
  onRemoteStream(stream: GuardedStream): void;
}

/**
 * Bounds what a peer can make libp2p buffer before `serveFrames` sees a stream. Until the
 * protocol is negotiated, libp2p reads everything a stream brings into a buffer of up to 4 MiB
 * (multistream-select's reader), and yamux grants more window as bytes arrive, so a peer that
 * never finishes negotiating could park 4 MiB on every stream of every connection for the whole
 * negotiation timeout. Bytes are counted where the muxer hands them to the stream, before anyone
 * buffers them; a stream past its bound, or whose connection is past its bound, is reset and the
 * bytes are dropped unread.
 */
export function guardNegotiation<M extends StreamMuxer>(
  factory: () => StreamMuxerFactory<M>,
  limits: { streamBytes: number; connectionBytes: number } = { streamBytes: NEGOTIATION_STREAM_BYTES, connectionBytes: NEGOTIATION_CONNECTION_BYTES },
): () => StreamMuxerFactory<M> {
  return () => {
    const inner = factory();
    return {
      protocol: inner.protocol,
      createStreamMuxer(maConn) {
        const muxer = inner.createStreamMuxer(maConn);
        const hook = muxer as unknown as RemoteStreamHook;
        const onRemoteStream = hook.onRemoteStream.bind(muxer);
        let connectionHeld = 0;
        hook.onRemoteStream = (stream) => {
          let held = 0;
          let counting = true;
          const stopCounting = (): void => {
            if (!counting) return;
            counting = false;
            connectionHeld -= held;
            held = 0;
          };
          const onData = stream.onData.bind(stream);
          stream.onData = (data) => {
            if (counting && stream.protocol !== '') stopCounting();
            if (counting) {
              if (held + data.byteLength > limits.streamBytes || connectionHeld + data.byteLength > limits.connectionBytes) {
                stopCounting();
                stream.abort(new Error('too many bytes before protocol negotiation finished'));
                return;
              }
              held += data.byteLength;
              connectionHeld += data.byteLength;
            }
            onData(data);
          };
          stream.addEventListener('close', stopCounting, { once: true });
          onRemoteStream(stream);
        };
        return muxer;
      },
    };
  };
}
