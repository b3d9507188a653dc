import { pino, type Logger } from 'pino';

/**
 * JSON lines on stdout. The redaction list is a second line of defence: code never
 * passes shares, passwords or private keys to the logger in the first place.
 * Written through process.stdout (synchronous for files and pipes on Linux), not pino's default
 * asynchronous stream: the CLI ends with process.exit(), whose synchronous flush would write the
 * buffered lines ahead of a write still in flight, so the last lines of a stop ("stopped", in
 * reverse order of start) came out of order or not at all.
 */
export function createLogger(level: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { pid: process.pid, ...bindings },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ['share', '*.share', 'password', '*.password', 'privateKey', '*.privateKey', 'secret', '*.secret'],
      censor: '[redacted]',
    },
  }, process.stdout);
}

export type { Logger };
