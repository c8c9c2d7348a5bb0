import type { WebhookQueue } from './webhooks.ts'

export interface QueueMessage {
  jobId: string
}

export interface QueueHandlerContext {
  /** Aborted when the queue stops or the delivery expires. */
  signal: AbortSignal
  /** 1 for the first delivery of this message. */
  attempt: number
}

export type QueueHandler = (message: QueueMessage, context: QueueHandlerContext) => Promise<void>

export interface WorkOptions {
  /** Jobs handled at once by this process. @default 1 */
  concurrency?: number
}

/**
 * Hands jobs to workers, at least once: a handler may see the same message again (after a
 * crash, an expiry, a retry) and must be safe to run twice. A handler that throws is
 * retried with backoff up to the queue's retry limit.
 *
 * @example
 * await queue.work(async ({ jobId }, { signal }) => service.runJob(jobId, { signal }))
 * await queue.send({ jobId })
 */
export interface Queue {
  send(message: QueueMessage): Promise<void>
  /** Starts consuming in this process. */
  work(handler: QueueHandler, options?: WorkOptions): Promise<void>
  /**
   * Stops consuming: running handlers are aborted through their signal and their jobs are
   * left to be delivered again. Resolves once they have returned.
   */
  close(): Promise<void>
  /**
   * Optional: a queue for webhook attempts on the same backend (pg-boss: a second named
   * queue), so that scheduled retries survive what the jobs survive. Probed once by the
   * service; the same queue every call.
   */
  webhookQueue?(): WebhookQueue
}
