/** How one webhook delivery attempt ended. */
export type WebhookDeliveryOutcome =
  /** The receiver answered 2xx. */
  | 'delivered'
  /** It failed (an error status, a timeout, a refused address) and will be tried again. */
  | 'retrying'
  /** It failed for the last time: no more attempts. */
  | 'failed'

/**
 * Counts what an operator watches, for the parts of the app that know of it first (the
 * webhook sender, the upload route). Every method is optional and must not throw: a recorder
 * only counts. The server's Prometheus registry implements it; `noopMetrics` counts nothing.
 *
 * @example
 * metrics.webhookDelivery?.('delivered')
 */
export interface MetricsRecorder {
  /** An upload of `bytes` was stored as an asset. */
  bytesUploaded?(bytes: number): void
  /** A webhook delivery attempt ended. */
  webhookDelivery?(outcome: WebhookDeliveryOutcome): void
}
