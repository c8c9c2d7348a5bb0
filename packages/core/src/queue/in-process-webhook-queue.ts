import { AbortedError, ConfigurationError, InvalidStateError } from '../errors.ts'
import { errorText } from '../logging/error-text.ts'
import type { Logger } from '../ports/logger.ts'
import type { WebhookQueue, WebhookSendOptions, WebhookTask } from '../ports/webhooks.ts'

export interface InProcessWebhookQueueOptions {
  /** Runs after the first for a handler that throws (not for a failed HTTP attempt: the dispatcher schedules those). @default 2 */
  retryLimit?: number
  /** Wait before the first such rerun; doubled for each further one. @default 1000 */
  retryDelayMs?: number
  /** Told about a task dropped after its last rerun. @default a process warning */
  logger?: Pick<Logger, 'error'>
}

type Handler = (task: WebhookTask, context: { signal: AbortSignal }) => Promise<void>

/**
 * Webhook attempts scheduled in this process's memory, for the defaults and the tests:
 * nothing survives a restart (the dispatcher's `resume()` hands the pending deliveries over
 * again). A (delivery, attempt) already waiting or running is not scheduled twice.
 */
export class InProcessWebhookQueue implements WebhookQueue {
  readonly #retryLimit: number
  readonly #retryDelayMs: number
  readonly #logger: Pick<Logger, 'error'> | undefined
  #handler: Handler | null = null
  #concurrency = 1
  #closed = false
  readonly #ready: Array<{ task: WebhookTask; run: number }> = []
  readonly #known = new Set<string>()
  readonly #timers = new Set<ReturnType<typeof setTimeout>>()
  readonly #running = new Map<string, { controller: AbortController; done: Promise<void> }>()

  constructor(options: InProcessWebhookQueueOptions = {}) {
    this.#retryLimit = options.retryLimit ?? 2
    this.#retryDelayMs = options.retryDelayMs ?? 1000
    this.#logger = options.logger
    if (!Number.isInteger(this.#retryLimit) || this.#retryLimit < 0) {
      throw new ConfigurationError(
        'inProcessWebhookQueue: option "retryLimit" must be an integer ≥ 0',
      )
    }
    if (!Number.isFinite(this.#retryDelayMs) || this.#retryDelayMs < 0) {
      throw new ConfigurationError(
        'inProcessWebhookQueue: option "retryDelayMs" must be a number ≥ 0',
      )
    }
  }

  async send(task: WebhookTask, options: WebhookSendOptions = {}): Promise<void> {
    if (this.#closed) throw new InvalidStateError('the webhook queue is closed')
    const key = taskKey(task)
    if (this.#known.has(key)) return
    this.#known.add(key)
    this.#later({ deliveryId: task.deliveryId, attempt: task.attempt }, 1, options.delayMs ?? 0)
  }

  async work(handler: Handler, options: { concurrency?: number } = {}): Promise<void> {
    if (this.#closed) throw new InvalidStateError('the webhook queue is closed')
    if (this.#handler) throw new InvalidStateError('this webhook queue already has a worker')
    const concurrency = options.concurrency ?? 1
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new ConfigurationError('work: option "concurrency" must be an integer ≥ 1')
    }
    this.#handler = handler
    this.#concurrency = concurrency
    this.#pump()
  }

  async close(): Promise<void> {
    this.#closed = true
    for (const timer of this.#timers) clearTimeout(timer)
    this.#timers.clear()
    this.#ready.length = 0
    for (const { controller } of this.#running.values()) {
      controller.abort(new AbortedError('the webhook queue is closing'))
    }
    await Promise.all([...this.#running.values()].map(({ done }) => done))
    this.#known.clear()
  }

  #later(task: WebhookTask, run: number, delayMs: number): void {
    if (delayMs <= 0) {
      this.#ready.push({ task, run })
      this.#pump()
      return
    }
    const timer = setTimeout(() => {
      this.#timers.delete(timer)
      if (this.#closed) return
      this.#ready.push({ task, run })
      this.#pump()
    }, delayMs)
    this.#timers.add(timer)
  }

  #pump(): void {
    while (
      this.#handler &&
      !this.#closed &&
      this.#running.size < this.#concurrency &&
      this.#ready.length > 0
    ) {
      const next = this.#ready.shift()!
      this.#run(next.task, next.run, this.#handler)
    }
  }

  #run(task: WebhookTask, run: number, handler: Handler): void {
    const key = taskKey(task)
    const controller = new AbortController()
    const done = (async () => {
      try {
        await handler({ ...task }, { signal: controller.signal })
        this.#known.delete(key)
      } catch (error) {
        if (this.#closed) return
        if (run <= this.#retryLimit) {
          this.#later(task, run + 1, this.#retryDelayMs * 2 ** (run - 1))
          return
        }
        this.#known.delete(key)
        const reason = errorText(error)
        if (this.#logger) {
          this.#logger.error(
            { deliveryId: task.deliveryId, attempt: task.attempt, error: reason },
            'transcodekit: a webhook task failed after its last rerun and was dropped',
          )
        } else {
          process.emitWarning(
            `webhook delivery ${task.deliveryId} (attempt ${task.attempt}) dropped: ${reason}`,
            'TranscodeKitWebhookWarning',
          )
        }
      } finally {
        this.#running.delete(key)
        this.#pump()
      }
    })()
    this.#running.set(key, { controller, done })
  }
}

/** Makes an in-process `WebhookQueue`. */
export function inProcessWebhookQueue(
  options?: InProcessWebhookQueueOptions,
): InProcessWebhookQueue {
  return new InProcessWebhookQueue(options)
}

function taskKey(task: WebhookTask): string {
  return `${task.deliveryId}:${task.attempt}`
}
