import { ConfigurationError, InvalidStateError } from '../errors.ts'
import { errorText } from '../logging/error-text.ts'
import type { Logger } from '../ports/logger.ts'
import type { WebhookQueue, WebhookSendOptions, WebhookTask } from '../ports/webhooks.ts'
import { MemoryScheduler } from './memory-scheduler.ts'

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
  readonly #scheduler: MemoryScheduler<WebhookTask>

  constructor(options: InProcessWebhookQueueOptions = {}) {
    const retryLimit = options.retryLimit ?? 2
    const retryDelayMs = options.retryDelayMs ?? 1000
    if (!Number.isInteger(retryLimit) || retryLimit < 0) {
      throw new ConfigurationError(
        'inProcessWebhookQueue: option "retryLimit" must be an integer ≥ 0',
      )
    }
    if (!Number.isFinite(retryDelayMs) || retryDelayMs < 0) {
      throw new ConfigurationError(
        'inProcessWebhookQueue: option "retryDelayMs" must be a number ≥ 0',
      )
    }
    const logger = options.logger
    this.#scheduler = new MemoryScheduler({
      key: (task) => `${task.deliveryId}:${task.attempt}`,
      retryLimit,
      retryDelayMs,
      onDrop(error, task) {
        const reason = errorText(error)
        if (logger) {
          logger.error(
            { deliveryId: task.deliveryId, attempt: task.attempt, error: reason },
            'transcodekit: a webhook task failed after its last rerun and was dropped',
          )
        } else {
          process.emitWarning(
            `webhook delivery ${task.deliveryId} (attempt ${task.attempt}) dropped: ${reason}`,
            'TranscodeKitWebhookWarning',
          )
        }
      },
      closingMessage: 'the webhook queue is closing',
    })
  }

  async send(task: WebhookTask, options: WebhookSendOptions = {}): Promise<void> {
    if (this.#scheduler.closed) throw new InvalidStateError('the webhook queue is closed')
    this.#scheduler.add(
      { deliveryId: task.deliveryId, attempt: task.attempt },
      options.delayMs ?? 0,
    )
  }

  async work(handler: Handler, options: { concurrency?: number } = {}): Promise<void> {
    if (this.#scheduler.closed) throw new InvalidStateError('the webhook queue is closed')
    if (this.#scheduler.hasRunner) {
      throw new InvalidStateError('this webhook queue already has a worker')
    }
    const concurrency = options.concurrency ?? 1
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new ConfigurationError('work: option "concurrency" must be an integer ≥ 1')
    }
    this.#scheduler.start((task, { signal }) => handler({ ...task }, { signal }), concurrency)
  }

  close(): Promise<void> {
    return this.#scheduler.close()
  }
}

/** Makes an in-process `WebhookQueue`. */
export function inProcessWebhookQueue(
  options?: InProcessWebhookQueueOptions,
): InProcessWebhookQueue {
  return new InProcessWebhookQueue(options)
}
