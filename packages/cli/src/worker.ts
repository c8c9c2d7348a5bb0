// `transcodekit worker` (and `pnpm worker` of the example): a process that only runs
// transcoding jobs (no HTTP), built by the same `createServices` as the server. Any number of
// them share the database: the PostgreSQL server at DATABASE_URL (from any machine), or the
// embedded one of the server on the same DATA_DIR. The API process (`WORKER=false`) enqueues,
// pg-boss hands each job to one worker at a time.
import { pino } from 'pino'
import { createServices, loadConfigOrExit } from './config.ts'
import { gracefulShutdown } from './graceful-shutdown.ts'

export interface WorkerOptions {
  /** Where the configuration is read from. @default process.env */
  env?: Record<string, string | undefined>
  /** The data folder when `DATA_DIR` is not set. @default `.transcodekit` in the working folder */
  defaultDataDir?: string
}

/** Runs jobs in this process until a signal stops it. */
export async function runWorker(options: WorkerOptions = {}): Promise<void> {
  const config = loadConfigOrExit(options.env ?? process.env, { dataDir: options.defaultDataDir })
  // memory:// belongs to one process; the embedded database is the one the server on this
  // DATA_DIR runs, which the worker attaches to.
  if (config.databaseUrl === 'memory://') {
    console.error(
      'invalid configuration:\n  - DATABASE_URL=memory:// is not shared between processes: ' +
        'a separate worker needs the embedded database or a postgres:// URL',
    )
    process.exit(1)
  }

  // JSON lines, as the server writes them; the engine and the service log here too.
  const log = pino({ level: config.logLevel })
  let services: Awaited<ReturnType<typeof createServices>>
  try {
    services = await createServices(config, { worker: true, attach: true, logger: log })
  } catch (error) {
    log.error({}, String(error instanceof Error ? error.message : error))
    process.exit(1)
  }
  // A running job is aborted and its delivery left to pg-boss, which hands it to a worker
  // again; its output keys are fixed, so the next run writes the same files.
  gracefulShutdown(
    { log, message: 'shutting down: running jobs are left to the next worker' },
    () => services.close(),
  )
  // The jobs this worker ran, not those other processes ended.
  services.service.subscribe(
    ({ job }) => {
      if (job.state === 'complete' || job.state === 'error' || job.state === 'canceled') {
        const fields = {
          jobId: job.id,
          state: job.state,
          ...(job.errorMessage ? { error: job.errorMessage } : {}),
        }
        if (job.state === 'error') log.error(fields, 'job ended')
        else log.info(fields, 'job ended')
      }
    },
    { remote: false },
  )
  await services.service.ready()
  log.info(
    {
      concurrency: config.workerConcurrency,
      engine: config.engine.kind,
      storage: config.storage.kind,
    },
    'transcodekit worker: consuming jobs',
  )
}
