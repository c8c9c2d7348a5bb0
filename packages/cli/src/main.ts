import { pino } from 'pino'
import { createServices, isLoopback, loadConfigOrExit } from './config.ts'
import { gracefulShutdown } from './graceful-shutdown.ts'
import { buildServer } from './server-app.ts'

/** How long requests still running at shutdown (a slow download, an upload) may go on. */
const SHUTDOWN_GRACE_MS = 10_000

export interface ServeOptions {
  /** Where the configuration is read from. @default process.env */
  env?: Record<string, string | undefined>
  /** The data folder when `DATA_DIR` is not set. @default `.transcodekit` in the working folder */
  defaultDataDir?: string
}

/**
 * Runs the server in this process (`transcodekit serve`, and `pnpm start` of the example) until
 * a signal stops it: the page, the API, and (unless `WORKER=false`) the jobs. A bad environment
 * is printed, every bad variable named, and the process exits 1.
 */
export async function serve(options: ServeOptions = {}): Promise<void> {
  const config = loadConfigOrExit(options.env ?? process.env, { dataDir: options.defaultDataDir })

  // One logger for the app and the services: the ffmpeg binaries in use, the warning about an
  // old build and failed jobs are JSON lines among the requests'.
  const logger = pino({ level: config.logLevel })
  const services = await createServices(config, { logger })
  const app = await buildServer(config, services, { loggerInstance: logger })

  const shutdown = gracefulShutdown(
    {
      log: app.log,
      message: 'shutting down: running jobs are left to resume at the next start',
    },
    async () => {
      // Requests still running get a grace period, then their connections are cut: an
      // unfinished upload is removed by the service, never kept.
      const grace = setTimeout(() => app.server.closeAllConnections(), SHUTDOWN_GRACE_MS)
      grace.unref()
      try {
        await app.close()
      } finally {
        clearTimeout(grace)
        await services.close()
      }
    },
  )

  try {
    await app.listen({ port: config.port, host: config.host })
  } catch (error) {
    app.log.error({ err: error }, 'could not listen')
    await services.close()
    process.exit(1)
  }
  try {
    const resumed = await services.service.resume()
    if (resumed > 0) app.log.info({ resumed }, 'handed unfinished jobs to the worker again')
  } catch (error) {
    // A SIGTERM right after start closes the database under `resume()`: the jobs it did not get
    // to are resumed at the next start.
    if (!shutdown.closing) throw error
  }
  if (!shutdown.closing) {
    if (config.apiKeys) {
      app.log.info({ owners: new Set(config.apiKeys.values()).size }, 'the API wants an API key')
    } else if (!isLoopback(config.host)) {
      app.log.warn(`AUTH=none: the API on ${config.host} has no access control`)
    }
    const { port } = app.server.address() as { port: number }
    app.log.info(
      `transcodekit: http://${config.host}:${port}/  (API docs: http://${config.host}:${port}/docs)`,
    )
  }
}
