// `pnpm worker`: a process that only runs transcoding jobs (no HTTP), built by the same
// `createServices` as the server. Any number of them, on any number of machines, share the
// PostgreSQL server at DATABASE_URL: the API process (`WORKER=false`) enqueues, pg-boss hands
// each job to one worker at a time.
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
// PGlite belongs to the one process that opened its folder, and memory:// to nobody else:
// only a database server has a queue that other processes can share.
if (config.databaseUrl === null || config.databaseUrl === 'memory://') {
  console.error(
    'invalid configuration:\n  - DATABASE_URL must be a postgres:// URL for a separate worker ' +
      '(the embedded database and memory:// are not shared between processes)',
  )
  process.exit(1)
}

const services = await createServices(config, { worker: true })
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
