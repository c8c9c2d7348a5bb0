import {
  AbortedError,
  ConfigurationError,
  type WebhookQueue,
  type WebhookSendOptions,
  type WebhookTask,
} from '@transcodekit/core'
import type { Job as BossJob, PgBoss } from 'pg-boss'

export interface PgBossWebhookQueueOptions {
  /** The PgBoss to use, shared with the job queue: this queue never stops it. */
  boss: PgBoss
  /** Starts the PgBoss if it is not running yet (the job queue's `start`). @default nothing */
  startBoss?: () => Promise<void>
  /** The pg-boss queue name. @default 'transcodekit-webhooks' */
  queueName?: string
  /**
   * Reruns of a task whose handler threw or whose worker died (a failed HTTP attempt is not
   * one: the dispatcher schedules the next attempt itself). @default 3
   */
  retryLimit?: number
  /** Wait before such a rerun, in seconds, doubled each time. @default 5 */
  retryDelaySec?: number
  /** Longest one attempt may run, in seconds. @default 120 */
  expireInSeconds?: number
  /** How often an idle worker looks for due attempts, in seconds (at least 0.5). @default 2 */
  pollingIntervalSeconds?: number
}

/**
 * Webhook attempts as a second named pg-boss queue beside the jobs' one: an attempt scheduled
 * for later (`startAfter`) waits in PostgreSQL, so retries survive restarts and any process
 * with a worker makes them. The singleton key is `<delivery id>:<attempt>` on an `exclusive`
 * queue, so one attempt is never waiting or running twice.
 */
export class PgBossWebhookQueue implements WebhookQueue {
  readonly #boss: PgBoss
  readonly #startBoss: () => Promise<void>
  readonly #queueName: string
  readonly #retryLimit: number
  readonly #retryDelaySec: number
  readonly #expireInSeconds: number
  readonly #pollingIntervalSeconds: number
  readonly #running = new Set<AbortController>()
  #ready: Promise<void> | null = null
  #workerId: string | null = null
  #closed = false

  constructor(options: PgBossWebhookQueueOptions) {
    if (!options?.boss) throw new ConfigurationError('pgBossWebhookQueue needs option "boss"')
    this.#boss = options.boss
    this.#startBoss = options.startBoss ?? (async () => {})
    this.#queueName = options.queueName ?? 'transcodekit-webhooks'
    this.#retryLimit = options.retryLimit ?? 3
    this.#retryDelaySec = options.retryDelaySec ?? 5
    this.#expireInSeconds = options.expireInSeconds ?? 120
    this.#pollingIntervalSeconds = options.pollingIntervalSeconds ?? 2
    check(
      /^[A-Za-z0-9_.-]{1,64}$/.test(this.#queueName),
      'queueName',
      'letters, digits, "_", "." or "-"',
    )
    check(
      Number.isInteger(this.#retryLimit) && this.#retryLimit >= 0,
      'retryLimit',
      'an integer >= 0',
    )
    check(this.#retryDelaySec >= 1, 'retryDelaySec', 'a number >= 1')
    check(
      Number.isInteger(this.#expireInSeconds) && this.#expireInSeconds >= 1,
      'expireInSeconds',
      'an integer >= 1',
    )
    check(this.#pollingIntervalSeconds >= 0.5, 'pollingIntervalSeconds', 'a number >= 0.5')
  }

  get queueName(): string {
    return this.#queueName
  }

  #start(): Promise<void> {
    if (this.#closed) return Promise.reject(new AbortedError('the webhook queue is closed'))
    this.#ready ??= (async () => {
      await this.#startBoss()
      await this.#boss.createQueue(this.#queueName, {
        policy: 'exclusive',
        retryLimit: this.#retryLimit,
        retryDelay: this.#retryDelaySec,
        retryBackoff: true,
        expireInSeconds: this.#expireInSeconds,
      })
    })().catch((error) => {
      this.#ready = null
      throw error
    })
    return this.#ready
  }

  async send(task: WebhookTask, options: WebhookSendOptions = {}): Promise<void> {
    await this.#start()
    const delaySec = Math.ceil((options.delayMs ?? 0) / 1000)
    const sent = await this.#boss.send(
      this.#queueName,
      { deliveryId: task.deliveryId, attempt: task.attempt },
      {
        singletonKey: `${task.deliveryId}:${task.attempt}`,
        ...(delaySec > 0 && { startAfter: delaySec }),
      },
    )
    if (sent !== null && delaySec === 0 && this.#workerId !== null) {
      this.#boss.notifyWorker(this.#workerId)
    }
  }

  async work(
    handler: (task: WebhookTask, context: { signal: AbortSignal }) => Promise<void>,
    options: { concurrency?: number } = {},
  ): Promise<void> {
    const concurrency = options.concurrency ?? 1
    check(Number.isInteger(concurrency) && concurrency >= 1, 'concurrency', 'an integer >= 1')
    if (this.#workerId !== null) {
      throw new ConfigurationError('this webhook queue is already working: call work() once')
    }
    await this.#start()
    this.#workerId = await this.#boss.work<WebhookTask>(
      this.#queueName,
      {
        localConcurrency: concurrency,
        batchSize: 1,
        pollingIntervalSeconds: this.#pollingIntervalSeconds,
      },
      async (jobs) => {
        for (const job of jobs) await this.#handle(job, handler)
      },
    )
  }

  async #handle(
    job: BossJob<WebhookTask>,
    handler: (task: WebhookTask, context: { signal: AbortSignal }) => Promise<void>,
  ): Promise<void> {
    const controller = new AbortController()
    this.#running.add(controller)
    try {
      if (this.#closed) throw new AbortedError('the webhook queue is closing')
      const signal = AbortSignal.any([job.signal, controller.signal])
      await handler({ deliveryId: job.data.deliveryId, attempt: job.data.attempt }, { signal })
    } finally {
      this.#running.delete(controller)
    }
  }

  /** Aborts the running attempts (their tasks run again) and stops this queue's worker. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const controller of this.#running) {
      controller.abort(new AbortedError('the webhook queue is closing'))
    }
    if (this.#workerId !== null) await this.#boss.offWork(this.#queueName, { wait: true })
  }
}

/** Makes the pg-boss `WebhookQueue` on a PgBoss the caller owns. */
export function pgBossWebhookQueue(options: PgBossWebhookQueueOptions): PgBossWebhookQueue {
  return new PgBossWebhookQueue(options)
}

function check(ok: boolean, option: string, expected: string): void {
  if (!ok)
    throw new ConfigurationError(`pgBossWebhookQueue: option "${option}" must be ${expected}`)
}
