import { ConfigurationError, InvalidRequestError, InvalidStateError } from '../errors.ts'
import { errorText } from '../logging/error-text.ts'
import type { Queue, QueueDepth, QueueHandler, QueueMessage, WorkOptions } from '../ports/queue.ts'
import { MemoryScheduler } from './memory-scheduler.ts'

export interface InProcessQueueOptions {
  /** Deliveries after the first one for a handler that throws. @default 2 */
  retryLimit?: number
  /** Wait before the first retry; it doubles for each further retry. @default 1000 */
  retryDelayMs?: number
  /**
   * Told about a message dropped after its last retry.
   * @default a process warning
   */
  onError?: (error: unknown, message: QueueMessage, attempt: number) => void
}

interface ResolvedOptions {
  retryLimit: number
  retryDelayMs: number
  onError: (error: unknown, message: QueueMessage, attempt: number) => void
}

function resolveOptions(options: InProcessQueueOptions): ResolvedOptions {
  const retryLimit = options.retryLimit ?? 2
  const retryDelayMs = options.retryDelayMs ?? 1000
  if (!Number.isInteger(retryLimit) || retryLimit < 0) {
    throw new ConfigurationError('inProcessQueue: option "retryLimit" must be an integer ≥ 0')
  }
  if (!Number.isFinite(retryDelayMs) || retryDelayMs < 0) {
    throw new ConfigurationError('inProcessQueue: option "retryDelayMs" must be a number ≥ 0')
  }
  return {
    retryLimit,
    retryDelayMs,
    onError:
      options.onError ??
      ((error, message, attempt) => {
        const reason = errorText(error)
        process.emitWarning(
          `job ${message.jobId} failed after ${attempt} deliveries and was dropped: ${reason}`,
          'TranscodeKitQueueWarning',
        )
      }),
  }
}

/**
 * A queue in this process's memory, for the defaults and for tests: nothing survives a
 * restart (the service's `resume()` hands unfinished jobs over again). A job id already
 * waiting, waiting for a retry or running is not queued a second time.
 */
export class InProcessQueue implements Queue {
  readonly #scheduler: MemoryScheduler<QueueMessage>

  constructor(options: InProcessQueueOptions = {}) {
    const { retryLimit, retryDelayMs, onError } = resolveOptions(options)
    this.#scheduler = new MemoryScheduler({
      key: (message) => message.jobId,
      retryLimit,
      retryDelayMs,
      onDrop(error, message, attempt) {
        try {
          onError(error, { ...message }, attempt)
        } catch (failure) {
          // The app's own reporter failed: say so where nothing else can fail.
          process.emitWarning(
            `the queue's onError failed for job ${message.jobId}: ${errorText(failure)}`,
            'TranscodeKitQueueWarning',
          )
        }
      },
      closingMessage: 'the queue is closing',
    })
  }

  async send(message: QueueMessage): Promise<void> {
    if (this.#scheduler.closed) throw new InvalidStateError('the queue is closed')
    if (typeof message?.jobId !== 'string' || message.jobId === '') {
      throw new InvalidRequestError('INVALID_MESSAGE', 'a queue message needs a non-empty jobId')
    }
    this.#scheduler.add({ jobId: message.jobId })
  }

  async work(handler: QueueHandler, options: WorkOptions = {}): Promise<void> {
    if (this.#scheduler.closed) throw new InvalidStateError('the queue is closed')
    if (this.#scheduler.hasRunner) throw new InvalidStateError('this queue already has a worker')
    const concurrency = options.concurrency ?? 1
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new ConfigurationError('work: option "concurrency" must be an integer ≥ 1')
    }
    this.#scheduler.start(
      (message, { signal, run }) => handler({ ...message }, { signal, attempt: run }),
      concurrency,
    )
  }

  async depth(): Promise<QueueDepth> {
    return this.#scheduler.depth()
  }

  /** Resolves once nothing is waiting, waiting for a retry, or running. */
  idle(): Promise<void> {
    return this.#scheduler.idle()
  }

  close(): Promise<void> {
    return this.#scheduler.close()
  }
}

/** Makes an in-process `Queue`. */
export function inProcessQueue(options?: InProcessQueueOptions): InProcessQueue {
  return new InProcessQueue(options)
}
