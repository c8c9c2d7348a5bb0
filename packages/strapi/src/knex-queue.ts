import { randomUUID } from 'node:crypto'
import {
  ConfigurationError,
  InvalidStateError,
  type Logger,
  type Queue,
  type QueueHandler,
  type QueueMessage,
  type WorkOptions,
} from '@transcodekit/core'
import type { Knex } from 'knex'
import { isUniqueViolation } from './knex-errors.ts'
import { TABLES } from './knex-migrations.ts'

export interface KnexQueueOptions {
  /** The Knex instance of Strapi's database (`strapi.db.connection`). Never closed here. */
  knex: Knex
  /**
   * How long a claim holds without news from its worker. A worker renews it every third of
   * it; a process that died without releasing its claims has them taken over once it lapses.
   * @default 60_000
   */
  leaseMs?: number
  /** How often an idle worker looks for work handed over by another process. @default 1000 */
  pollIntervalMs?: number
  /** Deliveries after the first one for a handler that throws. @default 2 */
  retryLimit?: number
  /** Wait before the first retry; it doubles for each further retry. @default 1000 */
  retryDelayMs?: number
  /** Where a dropped message or a failed renewal is told. @default console */
  logger?: Pick<Logger, 'warn' | 'error'>
}

interface WorkRow {
  job_id: string
  available_at: number | string
  locked_by: string | null
  locked_until: number | string | null
  deliveries: number | string
}

/**
 * A durable queue in Strapi's own database (any dialect): a message is a row, and a worker
 * claims it with one conditional `UPDATE` (`locked_until` lapsed or empty), so two processes,
 * or two starts of one app, never run one job at once. The claim is a lease the worker renews;
 * the row is deleted when the handler ends. What a stopped process was running is released at
 * `close()` and taken again at the next start; what a killed process was running is taken
 * again once its lease lapses.
 */
export class KnexQueue implements Queue {
  readonly #knex: Knex
  readonly #options: Required<Omit<KnexQueueOptions, 'knex' | 'logger'>>
  readonly #logger: Pick<Logger, 'warn' | 'error'>
  /** This queue's name on the claims it holds. */
  readonly #workerId = randomUUID()
  #handler: QueueHandler | null = null
  #concurrency = 1
  #closed = false
  readonly #running = new Map<string, { controller: AbortController; done: Promise<void> }>()
  #timer: ReturnType<typeof setTimeout> | null = null
  #polling: Promise<void> | null = null
  #pollAgain = false

  constructor(options: KnexQueueOptions) {
    if (!options?.knex) throw new ConfigurationError('knexQueue needs option "knex"')
    this.#knex = options.knex
    this.#options = {
      leaseMs: positive(options.leaseMs ?? 60_000, 'leaseMs'),
      pollIntervalMs: positive(options.pollIntervalMs ?? 1000, 'pollIntervalMs'),
      retryLimit: atLeastZero(options.retryLimit ?? 2, 'retryLimit'),
      retryDelayMs: atLeastZero(options.retryDelayMs ?? 1000, 'retryDelayMs'),
    }
    this.#logger = options.logger ?? console
  }

  async send(message: QueueMessage): Promise<void> {
    if (this.#closed) throw new InvalidStateError('the queue is closed')
    try {
      await this.#knex(TABLES.work).insert({
        job_id: message.jobId,
        available_at: Date.now(),
        locked_by: null,
        locked_until: null,
        deliveries: 0,
      })
    } catch (error) {
      // Already waiting or running: one row per job.
      if (!isUniqueViolation(error)) throw error
    }
    this.#poke()
  }

  async work(handler: QueueHandler, options: WorkOptions = {}): Promise<void> {
    if (this.#closed) throw new InvalidStateError('the queue is closed')
    if (this.#handler) throw new InvalidStateError('the queue already has a worker')
    this.#handler = handler
    this.#concurrency = options.concurrency ?? 1
    this.#poke()
  }

  /** Stops taking work, aborts the running handlers and releases their claims. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#timer) clearTimeout(this.#timer)
    await this.#polling
    for (const { controller } of this.#running.values()) controller.abort()
    await Promise.allSettled([...this.#running.values()].map((r) => r.done))
  }

  #poke(): void {
    if (!this.#handler || this.#closed) return
    if (this.#polling) {
      this.#pollAgain = true
      return
    }
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    this.#polling = this.#poll()
      .catch((error: unknown) => {
        this.#logger.error(
          { error: errorText(error) },
          'transcodekit: the queue could not look for work',
        )
      })
      .finally(() => {
        this.#polling = null
        if (this.#closed) return
        if (this.#pollAgain) {
          this.#pollAgain = false
          this.#poke()
          return
        }
        this.#timer = setTimeout(() => this.#poke(), this.#options.pollIntervalMs)
        this.#timer.unref?.()
      })
  }

  async #poll(): Promise<void> {
    while (!this.#closed && this.#running.size < this.#concurrency) {
      const row = await this.#claimNext()
      if (!row) return
      this.#start(row)
    }
  }

  /** Claims the oldest available message, or `null` when there is none to take. */
  async #claimNext(): Promise<WorkRow | null> {
    for (let tries = 0; tries < 5; tries++) {
      const now = Date.now()
      const candidate = await this.#knex<WorkRow>(TABLES.work)
        .where('available_at', '<=', now)
        .where((q) => q.whereNull('locked_until').orWhere('locked_until', '<', now))
        .whereNotIn('job_id', [...this.#running.keys()])
        .orderBy('available_at')
        .first()
      if (!candidate) return null
      // The claim: only one process's UPDATE can match while the row is free.
      const claimed = await this.#knex(TABLES.work)
        .where('job_id', candidate.job_id)
        .where((q) => q.whereNull('locked_until').orWhere('locked_until', '<', now))
        .update({
          locked_by: this.#workerId,
          locked_until: now + this.#options.leaseMs,
          deliveries: this.#knex.raw('deliveries + 1'),
        })
      if (claimed === 1) return { ...candidate, deliveries: Number(candidate.deliveries) + 1 }
    }
    return null
  }

  #start(row: WorkRow): void {
    const controller = new AbortController()
    const jobId = row.job_id
    const renew = setInterval(
      () => {
        this.#knex(TABLES.work)
          .where({ job_id: jobId, locked_by: this.#workerId })
          .update({ locked_until: Date.now() + this.#options.leaseMs })
          .then(
            (renewed) => {
              // Another process took the message over (this one stalled past its lease).
              if (renewed === 0) controller.abort()
            },
            (error: unknown) => {
              this.#logger.warn(
                { jobId, error: errorText(error) },
                'transcodekit: could not renew the claim on a job',
              )
            },
          )
      },
      Math.max(1, Math.floor(this.#options.leaseMs / 3)),
    )
    renew.unref?.()
    const done = this.#run(row, controller)
      .catch((error: unknown) => {
        this.#logger.error(
          { jobId, error: errorText(error) },
          'transcodekit: the queue could not settle a message',
        )
      })
      .finally(() => {
        clearInterval(renew)
        this.#running.delete(jobId)
        this.#poke()
      })
    this.#running.set(jobId, { controller, done })
  }

  async #run(row: WorkRow, controller: AbortController): Promise<void> {
    const mine = { job_id: row.job_id, locked_by: this.#workerId }
    const attempt = Number(row.deliveries)
    try {
      await this.#handler!({ jobId: row.job_id }, { signal: controller.signal, attempt })
      await this.#knex(TABLES.work).where(mine).delete()
    } catch (error) {
      if (controller.signal.aborted) {
        // Stopped, not failed: the next start (or another process) takes it at once.
        await this.#knex(TABLES.work)
          .where(mine)
          .update({ locked_by: null, locked_until: null, deliveries: attempt - 1 })
        return
      }
      if (attempt > this.#options.retryLimit) {
        await this.#knex(TABLES.work).where(mine).delete()
        this.#logger.error(
          { jobId: row.job_id, attempt, error: errorText(error) },
          'transcodekit: a job failed on its last delivery and was dropped',
        )
        return
      }
      const delayMs = this.#options.retryDelayMs * 2 ** (attempt - 1)
      this.#logger.warn(
        { jobId: row.job_id, attempt, delayMs, error: errorText(error) },
        'transcodekit: a job failed; it will be delivered again',
      )
      await this.#knex(TABLES.work)
        .where(mine)
        .update({ locked_by: null, locked_until: null, available_at: Date.now() + delayMs })
    }
  }
}

/** Makes the durable queue on Strapi's Knex instance. */
export function knexQueue(options: KnexQueueOptions): KnexQueue {
  return new KnexQueue(options)
}

function positive(value: number, option: string): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new ConfigurationError(`knexQueue: option "${option}" must be a number > 0`)
  }
  return value
}

function atLeastZero(value: number, option: string): number {
  if (!Number.isFinite(value) || value < 0) {
    throw new ConfigurationError(`knexQueue: option "${option}" must be a number ≥ 0`)
  }
  return value
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
