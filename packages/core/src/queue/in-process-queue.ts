import {
  AbortedError,
  ConfigurationError,
  InvalidRequestError,
  InvalidStateError,
} from '../errors.ts'
import { errorText } from '../logging/error-text.ts'
import type { Queue, QueueHandler, QueueMessage, WorkOptions } from '../ports/queue.ts'

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

interface Delivery {
  message: QueueMessage
  attempt: number
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
  readonly #options: ResolvedOptions
  #handler: QueueHandler | null = null
  #concurrency = 1
  #closed = false
  readonly #ready: Delivery[] = []
  /** Job ids waiting, waiting for a retry, or running. */
  readonly #known = new Set<string>()
  readonly #running = new Map<Delivery, { controller: AbortController; done: Promise<void> }>()
  readonly #timers = new Set<ReturnType<typeof setTimeout>>()
  #idleWaiters: Array<() => void> = []

  constructor(options: InProcessQueueOptions = {}) {
    this.#options = resolveOptions(options)
  }

  async send(message: QueueMessage): Promise<void> {
    if (this.#closed) throw new InvalidStateError('the queue is closed')
    if (typeof message?.jobId !== 'string' || message.jobId === '') {
      throw new InvalidRequestError('INVALID_MESSAGE', 'a queue message needs a non-empty jobId')
    }
    if (this.#known.has(message.jobId)) return
    this.#known.add(message.jobId)
    this.#ready.push({ message: { jobId: message.jobId }, attempt: 1 })
    this.#pump()
  }

  async work(handler: QueueHandler, options: WorkOptions = {}): Promise<void> {
    if (this.#closed) throw new InvalidStateError('the queue is closed')
    if (this.#handler) throw new InvalidStateError('this queue already has a worker')
    const concurrency = options.concurrency ?? 1
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new ConfigurationError('work: option "concurrency" must be an integer ≥ 1')
    }
    this.#handler = handler
    this.#concurrency = concurrency
    this.#pump()
  }

  /** Resolves once nothing is waiting, waiting for a retry, or running. */
  idle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve()
    return new Promise((resolve) => this.#idleWaiters.push(resolve))
  }

  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true
      for (const timer of this.#timers) clearTimeout(timer)
      this.#timers.clear()
      this.#ready.length = 0
      for (const { controller } of this.#running.values()) {
        controller.abort(new AbortedError('the queue is closing'))
      }
    }
    await Promise.all([...this.#running.values()].map(({ done }) => done))
    this.#known.clear()
    this.#notifyIdle()
  }

  #pump(): void {
    while (
      this.#handler &&
      !this.#closed &&
      this.#running.size < this.#concurrency &&
      this.#ready.length > 0
    ) {
      this.#deliver(this.#ready.shift()!, this.#handler)
    }
    this.#notifyIdle()
  }

  #deliver(delivery: Delivery, handler: QueueHandler): void {
    const controller = new AbortController()
    const { message, attempt } = delivery
    const run = async () => {
      try {
        await handler({ ...message }, { signal: controller.signal, attempt })
        this.#known.delete(message.jobId)
      } catch (error) {
        // Stopped by close(): not a failure of the job, and nothing is delivered any more.
        if (this.#closed) return
        if (attempt <= this.#options.retryLimit) {
          this.#retryLater({ message, attempt: attempt + 1 })
        } else {
          this.#known.delete(message.jobId)
          try {
            this.#options.onError(error, { ...message }, attempt)
          } catch {}
        }
      } finally {
        this.#running.delete(delivery)
        this.#pump()
      }
    }
    const entry = { controller, done: Promise.resolve() }
    this.#running.set(delivery, entry)
    entry.done = run()
  }

  #retryLater(delivery: Delivery): void {
    const delay = this.#options.retryDelayMs * 2 ** (delivery.attempt - 2)
    const timer = setTimeout(() => {
      this.#timers.delete(timer)
      if (this.#closed) return
      this.#ready.push(delivery)
      this.#pump()
    }, delay)
    this.#timers.add(timer)
  }

  #isIdle(): boolean {
    return this.#ready.length === 0 && this.#running.size === 0 && this.#timers.size === 0
  }

  #notifyIdle(): void {
    if (!this.#isIdle() || this.#idleWaiters.length === 0) return
    const waiters = this.#idleWaiters
    this.#idleWaiters = []
    for (const resolve of waiters) resolve()
  }
}

/** Makes an in-process `Queue`. */
export function inProcessQueue(options?: InProcessQueueOptions): InProcessQueue {
  return new InProcessQueue(options)
}
