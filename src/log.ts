import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

/** Log levels accepted by `--log-level`. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** One of `LOG_LEVELS`. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The one root logger of a process. JSON lines on the given stream (stderr by
 * default, so stdout stays free for program output). Messages are constant
 * strings; untrusted values go in fields. Bearer tokens and authorization
 * headers are redacted wherever they appear in a logged object.
 */
export function createLogger(
  level: LogLevel = 'info',
  destination: NodeJS.WritableStream = process.stderr,
): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: { err: pino.stdSerializers.err },
      redact: {
        paths: [
          'token',
          '*.token',
          'authorization',
          '*.authorization',
          'headers.authorization',
          '*.headers.authorization',
          'bearerToken',
        ],
        censor: '[redacted]',
      },
    },
    destination as pino.DestinationStream,
  );
}
