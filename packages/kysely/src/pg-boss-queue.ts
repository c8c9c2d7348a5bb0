import { randomUUID } from 'node:crypto'
import {
  AbortedError,
  ConfigurationError,
  consoleLogger,
  errorText,
  type Logger,
  type Queue,
  type QueueHandler,
  type QueueMessage,
  type WorkOptions,
} from '@transcodekit/core'
import { type Job as BossJob, PgBoss } from 'pg-boss'
import { PgBossWebhookQueue } from './pg-boss-webhook-queue.ts'
import { SendBatcher } from './send-batcher.ts'

// The most messages one insert statement carries.
const MAX_BATCH = 500

export interface PgBossQueueOptions {
  /** A PostgreSQL connection string: the queue makes its own PgBoss on it, and stops it in `close()`. */
  connectionString?: string
  /**
   * A PgBoss the app made (and started) instead, to share one with the app's own queues. The
   * queue never stops it: `close()` only stops this queue's workers.
   */
  boss?: PgBoss
  /** pg-boss's schema, when the queue makes the PgBoss. @default 'pgboss' */
  schema?: string
  /** The pg-boss queue name. @default 'transcodekit-jobs' */
  queueName?: string
  /** Deliveries after the first one before pg-boss gives up on a message. @default 5 */
  retryLimit?: number
  /** Delay before the first retry, in seconds; doubled on each retry (with jitter). @default 5 */
  retryDelaySec?: number
  /** Longest delay between retries, in seconds. @default 300 */
  retryDelayMaxSec?: number
  /**
   * Longest one delivery may run, in seconds (at most a day); after that its handler is aborted
   * and the message retried. Above the ffmpeg engine's own 6-hour limit, so that the engine's
   * `TIMEOUT` error ends a runaway job rather than an endless redelivery.
   * @default 28800 (8 hours)
   */
  expireInSeconds?: number
  /**
   * A running handler's worker refreshes a heartbeat every half of this; a message whose
   * heartbeat is older (its worker died) is handed to another worker. At least 10.
   * @default 30
   */
  heartbeatSeconds?: number
  /** How often lost and expired deliveries are looked for, in seconds (when the queue makes the PgBoss). @default 10 */
  superviseIntervalSeconds?: number
  /** How often an idle worker looks for messages, in seconds (at least 0.5). @default 2 */
  pollingIntervalSeconds?: number
  /** How long `close()` waits for running handlers once they are aborted. @default 30000 */
  stopTimeoutMs?: number
  /**
   * Errors pg-boss reports in the background (a lost connection, a failed maintenance pass).
   * @default logged by `logger`
   */
  onError?: (error: unknown) => void
  /** Where background failures are logged (pino fits). @default core's consoleLogger() */
  logger?: Logger
}

interface ResolvedOptions {
  queueName: string
  retryLimit: number
  retryDelaySec: number
  retryDelayMaxSec: number
  expireInSeconds: number
  heartbeatSeconds: number
  pollingIntervalSeconds: number
  stopTimeoutMs: number
}

function resolveOptions(options: PgBossQueueOptions): ResolvedOptions {
  const resolved: ResolvedOptions = {
    queueName: options.queueName ?? 'transcodekit-jobs',
    retryLimit: options.retryLimit ?? 5,
    retryDelaySec: options.retryDelaySec ?? 5,
    retryDelayMaxSec: options.retryDelayMaxSec ?? 300,
    expireInSeconds: options.expireInSeconds ?? 8 * 3600,
    heartbeatSeconds: options.heartbeatSeconds ?? 30,
    pollingIntervalSeconds: options.pollingIntervalSeconds ?? 2,
    stopTimeoutMs: options.stopTimeoutMs ?? 30_000,
  }
  check(
    /^[A-Za-z0-9_.-]{1,50}$/.test(resolved.queueName),
    'queueName',
    'letters, digits, "_", "." or "-"',
  )
  check(isInt(resolved.retryLimit, 0), 'retryLimit', 'an integer >= 0')
  check(resolved.retryDelaySec >= 1, 'retryDelaySec', 'a number >= 1')
  check(
    resolved.retryDelayMaxSec >= resolved.retryDelaySec,
    'retryDelayMaxSec',
    'at least retryDelaySec',
  )
  check(
    isInt(resolved.expireInSeconds, 1) && resolved.expireInSeconds <= 24 * 3600,
    'expireInSeconds',
    'an integer from 1 to 86400',
  )
  check(isInt(resolved.heartbeatSeconds, 10), 'heartbeatSeconds', 'an integer >= 10')
  check(resolved.pollingIntervalSeconds >= 0.5, 'pollingIntervalSeconds', 'a number >= 0.5')
  check(isInt(resolved.stopTimeoutMs, 1000), 'stopTimeoutMs', 'an integer >= 1000')
  return resolved
}

/**
 * A `Queue` on pg-boss, over the same PostgreSQL as the repository: any number of worker
 * processes on any number of machines share it.
 * - at least once: a message is settled only when its handler returns; a handler that throws
 *   is retried with exponential backoff up to `retryLimit`;
 * - a worker that dies (even by SIGKILL) stops refreshing its heartbeat, and its message is
 *   handed to another worker after `heartbeatSeconds`;
 * - the message's `singletonKey` is the job id on an `exclusive` queue, so a job is never
 *   queued (or running) twice at once: sending it again meanwhile does nothing.
 */
export class PgBossQueue implements Queue {
  readonly #boss: PgBoss
  readonly #ownsBoss: boolean
  readonly #options: ResolvedOptions
  readonly #logger: Logger
  readonly #running = new Set<AbortController>()
  #ready: Promise<void> | null = null
  #working = false
  /** The pg-boss worker of `work()`, woken when this process sends a message. */
  #workerId: string | null = null
  #closing = false
  #closed: Promise<void> | null = null
  #webhooks: PgBossWebhookQueue | null = null
  /** Sends made while an insert runs go together in the next one. */
  readonly #sends = new SendBatcher<string, boolean>((jobIds) => this.#insert(jobIds), MAX_BATCH)

  constructor(options: PgBossQueueOptions) {
    this.#options = resolveOptions(options)
    this.#logger = options.logger ?? consoleLogger()
    if (options.boss) {
      this.#boss = options.boss
      this.#ownsBoss = false
    } else {
      if (!options.connectionString) {
        throw new ConfigurationError('pgBossQueue needs option "connectionString" or "boss"')
      }
      const supervise = options.superviseIntervalSeconds ?? 10
      check(isInt(supervise, 1), 'superviseIntervalSeconds', 'an integer >= 1')
      this.#boss = new PgBoss({
        connectionString: options.connectionString,
        schema: options.schema ?? 'pgboss',
        superviseIntervalSeconds: supervise,
        // Expiry is checked on the monitor pass, which pg-boss throttles on its own interval.
        monitorIntervalSeconds: supervise,
        schedule: false,
      })
      this.#ownsBoss = true
      this.#boss.on(
        'error',
        options.onError ??
          ((error: unknown) =>
            this.#logger.error({ error: errorText(error) }, 'transcodekit: pg-boss failed')),
      )
    }
  }

  /** The underlying PgBoss (to inspect the queue, or share it). */
  get boss(): PgBoss {
    return this.#boss
  }

  get queueName(): string {
    return this.#options.queueName
  }

  /**
   * Webhook attempts on the same PgBoss, in the queue `<queueName>-webhooks`. Close it before
   * this queue: stopping a PgBoss this queue made stops its workers too.
   */
  webhookQueue(): PgBossWebhookQueue {
    this.#webhooks ??= new PgBossWebhookQueue({
      boss: this.#boss,
      startBoss: () => this.start(),
      queueName: `${this.#options.queueName}-webhooks`,
      pollingIntervalSeconds: this.#options.pollingIntervalSeconds,
    })
    return this.#webhooks
  }

  /** Starts pg-boss (when the queue made it) and creates the queue. Called by `send` and `work`. */
  start(): Promise<void> {
    if (this.#closing) return Promise.reject(new AbortedError('the queue is closed'))
    this.#ready ??= this.#start().catch((error) => {
      this.#ready = null
      throw error
    })
    return this.#ready
  }

  async #start(): Promise<void> {
    if (this.#ownsBoss) await this.#boss.start()
    const o = this.#options
    await this.#boss.createQueue(o.queueName, {
      policy: 'exclusive',
      retryLimit: o.retryLimit,
      retryDelay: o.retryDelaySec,
      retryBackoff: true,
      retryDelayMax: o.retryDelayMaxSec,
      expireInSeconds: o.expireInSeconds,
      heartbeatSeconds: o.heartbeatSeconds,
    })
  }

  /**
   * Queues the job's message, unless one is already queued or running (the `exclusive` queue's
   * unique index on the singleton key decides, in the database). Sends of a burst are batched:
   * those made while an insert runs go in the next one, one statement for up to 500.
   */
  async send(message: QueueMessage): Promise<void> {
    await this.start()
    const sent = await this.#sends.add(message.jobId)
    // A worker in this process takes it now rather than at its next poll.
    if (sent && this.#workerId !== null) this.#boss.notifyWorker(this.#workerId)
  }

  /** Inserts one message per job id; for each, whether it was queued (false: one already was). */
  async #insert(jobIds: string[]): Promise<Array<boolean | Error>> {
    const name = this.#options.queueName
    // Ids of our own, to tell which rows the insert made (it skips the others).
    const ids = new Map<string, string>()
    for (const jobId of jobIds) if (!ids.has(jobId)) ids.set(jobId, randomUUID())
    try {
      const inserted = new Set(
        (await this.#boss.insert(
          name,
          [...ids].map(([jobId, id]) => ({ id, data: { jobId }, singletonKey: jobId })),
          { returnId: true },
        )) ?? [],
      )
      // A job id sent twice in the batch is queued once: the first send made it.
      const first = new Set<string>()
      return jobIds.map((jobId) => {
        if (first.has(jobId)) return false
        first.add(jobId)
        return inserted.has(ids.get(jobId) as string)
      })
    } catch (error) {
      // One bad message fails the whole statement: send each alone for its own outcome.
      this.#logger.warn(
        { error: errorText(error), messages: jobIds.length },
        'transcodekit: a batch of queue messages failed; sending each alone',
      )
      return Promise.all(
        jobIds.map((jobId) =>
          this.#boss.send(name, { jobId }, { singletonKey: jobId }).then(
            (id) => id !== null,
            (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
          ),
        ),
      )
    }
  }

  async work(handler: QueueHandler, options: WorkOptions = {}): Promise<void> {
    const concurrency = options.concurrency ?? 1
    check(isInt(concurrency, 1), 'concurrency', 'an integer >= 1')
    if (this.#working)
      throw new ConfigurationError('this queue is already working: call work() once')
    this.#working = true
    await this.start()
    this.#workerId = await this.#boss.work<QueueMessage>(
      this.#options.queueName,
      {
        localConcurrency: concurrency,
        batchSize: 1,
        pollingIntervalSeconds: this.#options.pollingIntervalSeconds,
      },
      async (jobs) => {
        for (const job of jobs) await this.#handle(job, handler)
      },
    )
  }

  async #handle(job: BossJob<QueueMessage>, handler: QueueHandler): Promise<void> {
    const controller = new AbortController()
    this.#running.add(controller)
    try {
      if (this.#closing) throw new AbortedError('the queue is closing')
      const signal = AbortSignal.any([job.signal, controller.signal])
      await handler({ jobId: job.data.jobId }, { signal, attempt: job.retryCount + 1 })
      // Aborted by close(): the handler may have stopped early without saying so. Failing the
      // delivery leaves the message to be delivered again; a handler that did finish sees its
      // job ended and does nothing the second time.
      if (controller.signal.aborted) throw controller.signal.reason
    } finally {
      this.#running.delete(controller)
    }
  }

  /**
   * Aborts the running handlers, waits for them to return (their messages go back to be
   * delivered again, after the retry delay), and stops pg-boss if the queue made it.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close()
    return this.#closed
  }

  async #close(): Promise<void> {
    this.#closing = true
    // Its workers run on this PgBoss: stopped first, while the PgBoss still runs.
    await this.#webhooks?.close()
    for (const controller of this.#running)
      controller.abort(new AbortedError('the queue is closing'))
    if (!this.#ready) {
      if (this.#ownsBoss) {
        await this.#boss.stop({ graceful: false, close: true }).catch((error: unknown) => {
          this.#logger.warn({ error: errorText(error) }, 'transcodekit: pg-boss did not stop')
        })
      }
      return
    }
    // A failed start was answered to whoever called start(); there is nothing to stop then.
    await this.#ready.catch(() => {})
    if (this.#ownsBoss) {
      await this.#boss.stop({ graceful: true, close: true, timeout: this.#options.stopTimeoutMs })
    } else {
      await this.#boss.offWork(this.#options.queueName, { wait: true })
    }
  }
}

/** Makes the pg-boss `Queue`. */
export function pgBossQueue(options: PgBossQueueOptions): PgBossQueue {
  return new PgBossQueue(options)
}

function isInt(value: number, min: number): boolean {
  return Number.isInteger(value) && value >= min
}

function check(ok: boolean, option: string, expected: string): void {
  if (!ok) throw new ConfigurationError(`option "${option}" must be ${expected}`)
}
