import { ConfigurationError, resolveWebhookOptions, type WebhookOptions } from '@transcodekit/core'

/** The one webhook endpoint `serve` and `worker` take from the environment. */
export interface WebhookConfig {
  /** `WEBHOOK_URL`: where every event is POSTed. */
  url: string
  /** `WEBHOOK_SECRET`: the Standard Webhooks `whsec_…` secret. */
  secret: string
  /** `WEBHOOK_ALLOW_PRIVATE=true`: a receiver on a private or loopback address (development). */
  allowPrivateAddresses: boolean
  /** `WEBHOOK_RETRY_DELAY_MS`: the wait before the second attempt, doubled for each further one. */
  retryDelayMs: number
  /**
   * `WEBHOOK_RETAIN_DAYS`: how long a delivery that ended is kept (in ms here; `Infinity` when
   * the variable is 0).
   */
  retainEndedMs: number
}

/**
 * Reads `WEBHOOK_URL`, `WEBHOOK_SECRET` and `WEBHOOK_ALLOW_PRIVATE` (already read as a
 * boolean), checked as the core checks an endpoint; `null` when no webhook is configured.
 * Each problem is pushed to `problems`, named by its variable.
 */
export function readWebhookConfig(
  url: string | null,
  secret: string | null,
  settings: Pick<WebhookConfig, 'allowPrivateAddresses' | 'retryDelayMs' | 'retainEndedMs'>,
  problems: string[],
): WebhookConfig | null {
  if (url === null && secret === null) return null
  if (url === null) {
    problems.push('WEBHOOK_SECRET is set without WEBHOOK_URL: set both, or neither')
    return null
  }
  if (secret === null) {
    problems.push('WEBHOOK_SECRET is required when WEBHOOK_URL is set (whsec_ and base64)')
    return null
  }
  const config = { url, secret, ...settings }
  try {
    resolveWebhookOptions(webhookOptions(config))
  } catch (error) {
    if (!(error instanceof ConfigurationError)) throw error
    if (/\.url:/.test(error.message)) {
      const reason = error.message.replace(/^.*\.url: /, '')
      problems.push(
        `WEBHOOK_URL: ${reason}${/public address|loopback/.test(reason) ? ' (WEBHOOK_ALLOW_PRIVATE=true allows it)' : ''}`,
      )
    } else if (/\.secret/.test(error.message)) {
      problems.push('WEBHOOK_SECRET must be "whsec_" and 24 to 64 bytes in base64')
    } else {
      problems.push(`WEBHOOK_URL: ${error.message}`)
    }
    return null
  }
  return config
}

/** The service's `webhooks` option for the configured endpoint: every event type. */
export function webhookOptions(config: WebhookConfig): WebhookOptions {
  return {
    endpoints: [{ id: 'env', url: config.url, secret: config.secret }],
    allowPrivateAddresses: config.allowPrivateAddresses,
    retryDelayMs: config.retryDelayMs,
    retryDelayMaxMs: Math.max(config.retryDelayMs, 3_600_000),
    retainEndedMs: config.retainEndedMs,
  }
}
