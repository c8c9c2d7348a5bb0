import { ConfigError, createServices, loadConfig } from './config.ts'
import { buildServer } from './server-app.ts'

let config: ReturnType<typeof loadConfig>
try {
  config = loadConfig(process.env)
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(error.message)
    process.exit(1)
  }
  throw error
}

const services = await createServices(config)
const app = await buildServer(config, services)

const SHUTDOWN_GRACE_MS = 10_000

let stopping = false
function stop(signal: string) {
  if (stopping) return
  stopping = true
  void (async () => {
    app.log.info({ signal }, 'shutting down: running jobs are left to resume at the next start')
    const timer = setTimeout(() => {
      app.log.error('shutdown took too long, exiting')
      process.exit(1)
    }, 30_000)
    timer.unref()
    // Requests still running (a slow download, an upload) get a grace period, then their
    // connections are cut: an unfinished upload is removed by the service, never kept.
    const grace = setTimeout(() => app.server.closeAllConnections(), SHUTDOWN_GRACE_MS)
    grace.unref()
    try {
      await app.close()
      clearTimeout(grace)
      await services.close()
      process.exitCode = 0
    } catch (error) {
      app.log.error({ err: error }, 'shutdown failed')
      process.exitCode = 1
    }
  })()
}
process.once('SIGTERM', () => stop('SIGTERM'))
process.once('SIGINT', () => stop('SIGINT'))

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
  if (!stopping) throw error
}
if (!stopping) {
  const { port } = app.server.address() as { port: number }
  app.log.info(
    `transcodekit example: http://${config.host}:${port}/  (API docs: http://${config.host}:${port}/docs)`,
  )
}
