import closeWithGrace from 'close-with-grace'

/** The subset of a pino logger the shutdown writes to (a Fastify app's `log` fits). */
export interface ShutdownLogger {
  info(fields: Record<string, unknown>, message: string): void
  error(fields: Record<string, unknown>, message: string): void
}

export interface GracefulShutdownOptions {
  log: ShutdownLogger
  /** Logged when a signal starts the shutdown, with the signal's name. */
  message: string
  /**
   * How long closing may take; then the process exits with 1 whatever is still open.
   * @default 30_000
   */
  timeoutMs?: number
}

export interface GracefulShutdown {
  /** True once a signal or an uncaught error has started the shutdown. */
  readonly closing: boolean
}

/**
 * The one way the server and the worker end: on SIGTERM, SIGINT (and the other signals
 * `close-with-grace` handles) `close` runs, then the process exits 0, or 1 when `close`
 * fails or outlasts `timeoutMs`. A second signal while closing exits 1 at once. An uncaught
 * exception or unhandled rejection is logged, `close` runs, and the process exits 1.
 */
export function gracefulShutdown(
  options: GracefulShutdownOptions,
  close: (reason: { signal?: string; err?: Error }) => Promise<void>,
): GracefulShutdown {
  const { log, message } = options
  const timeoutMs = options.timeoutMs ?? 30_000
  let closing = false
  closeWithGrace(
    {
      delay: timeoutMs,
      // close-with-grace logs nothing itself: every line goes through our logger.
      logger: false,
      onSecondSignal: (signal) => log.error({ signal }, `second ${signal}: exiting at once`),
      onSecondError: (err) => log.error({ err }, 'uncaught error while shutting down: exiting'),
      onTimeout: (delay) => log.error({ timeoutMs: delay }, 'shutdown took too long: exiting'),
    },
    async ({ signal, err }) => {
      closing = true
      if (err) log.error({ err }, 'uncaught error: shutting down')
      else if (signal) log.info({ signal }, message)
      try {
        await close({ ...(signal ? { signal } : {}), ...(err ? { err } : {}) })
      } catch (error) {
        log.error({ err: error }, 'shutdown failed')
        throw error
      }
    },
  )
  return {
    get closing() {
      return closing
    },
  }
}
