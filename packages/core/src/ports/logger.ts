/** One level of a `Logger`: pino's call shapes, an object of fields and/or a message. */
export interface LogFn {
  (fields: Record<string, unknown>, message?: string): void
  (message: string): void
}

/**
 * Where core writes what an operator should see: the subset of pino's logger (and of
 * Fastify's `app.log`) it uses, so any of them can be passed as they are.
 *
 * @example
 * const engine = ffmpegEngine({ logger: app.log })
 */
export interface Logger {
  info: LogFn
  warn: LogFn
  error: LogFn
}
