// `pnpm worker`: a process that only runs transcoding jobs (no HTTP), built by the same
// `createServices` as the server. Any number of them share the database: the PostgreSQL server
// at DATABASE_URL (from any machine), or the embedded one of the server on the same DATA_DIR.
// The API process (`WORKER=false`) enqueues, pg-boss hands each job to one worker at a time.
import { ConfigError, createServices, loadConfig } from './config.ts'

const log = (level: 'info' | 'error', msg: string, fields: Record<string, unknown> = {}) => {
  const line = JSON.stringify({ level, time: Date.now(), pid: process.pid, ...fields, msg })
  if (level === 'error') console.error(line)
  else console.log(line)
}

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
// memory:// belongs to one process; the embedded database is the one the server on this
// DATA_DIR runs, which the worker attaches to.
if (config.databaseUrl === 'memory://') {
  console.error(
    'invalid configuration:\n  - DATABASE_URL=memory:// is not shared between processes: ' +
      'a separate worker needs the embedded database or a postgres:// URL',
  )
  process.exit(1)
}

let services: Awaited<ReturnType<typeof createServices>>
try {
  services = await createServices(config, { worker: true, attach: true })
} catch (error) {
  log('error', String(error instanceof Error ? error.message : error))
  process.exit(1)
}
services.service.subscribe(({ job }) => {
  if (job.state === 'complete' || job.state === 'error' || job.state === 'canceled') {
    log(job.state === 'error' ? 'error' : 'info', 'job ended', {
      jobId: job.id,
      state: job.state,
      ...(job.errorMessage ? { error: job.errorMessage } : {}),
    })
  }
})
await services.service.ready()
log('info', 'transcodekit worker: consuming jobs', {
  concurrency: config.workerConcurrency,
  engine: config.engine.kind,
  storage: config.storage.kind,
})

let stopping = false
function stop(signal: string) {
  if (stopping) return
  stopping = true
  void (async () => {
    // A running job is aborted and its delivery left to pg-boss, which hands it to a worker
    // again; its output keys are fixed, so the next run writes the same files.
    log('info', 'shutting down: running jobs are left to the next worker', { signal })
    const timer = setTimeout(() => {
      log('error', 'shutdown took too long, exiting')
      process.exit(1)
    }, 30_000)
    timer.unref()
    try {
      await services.close()
      process.exitCode = 0
    } catch (error) {
      log('error', 'shutdown failed', { err: String(error) })
      process.exitCode = 1
    }
  })()
}
process.once('SIGTERM', () => stop('SIGTERM'))
process.once('SIGINT', () => stop('SIGINT'))
