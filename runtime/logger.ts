import { pino, type Logger } from 'pino';

/**
 * JSON lines on stdout. The redaction list is a second line of defence: code never
 * passes shares, passwords or private keys to the logger in the first place.
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
  });
}

export type { Logger };
