import { createHash } from 'node:crypto'
import { ConfigurationError, WebhookUrlError } from '../errors.ts'
import type { Owner } from '../model.ts'
import { checkCountOrUnlimited } from '../option-checks.ts'
import type { Logger } from '../ports/logger.ts'
import type {
  WebhookDelivery,
  WebhookDeliveryStore,
  WebhookEventType,
  WebhookQueue,
} from '../ports/webhooks.ts'
import { type AddressResolver, checkWebhookUrl } from './address-guard.ts'
import { WEBHOOK_EVENT_TYPES } from './webhook-events.ts'

/** One receiver of webhooks. */
export interface WebhookEndpointOptions {
  /**
   * Names the endpoint in the deliveries; keep it stable across restarts, or pending
   * deliveries of the old id fail as unconfigured. Letters, digits, `_`, `.`, `-`.
   * @default `ep_` and a hash of the URL
   */
  id?: string
  /** Where deliveries are POSTed: http(s), no credentials, a public address unless allowed. */
  url: string
  /** The Standard Webhooks secret, `whsec_` and 24 to 64 base64 bytes. */
  secret: string
  /** The event types it wants. @default every type */
  events?: readonly WebhookEventType[]
  /** Only the events of this owner's jobs and assets. @default every owner's */
  owner?: Owner
}

export interface WebhookOptions {
  /** Any number of receivers. */
  endpoints: readonly WebhookEndpointOptions[]
  /**
   * Where deliveries are recorded. @default the repository's `webhookStore()` (its database),
   * or in memory
   */
  store?: WebhookDeliveryStore
  /**
   * Schedules the attempts. @default the job queue's `webhookQueue()` (pg-boss: a second named
   * queue), or in memory
   */
  queue?: WebhookQueue
  /**
   * Allows receivers on private, loopback, link-local and other non-public addresses (for
   * development, or a receiver inside the app's network). @default false
   */
  allowPrivateAddresses?: boolean
  /** Attempts before a delivery is given up (a redelivery by hand makes one more). @default 8 */
  maxAttempts?: number
  /** Wait before the second attempt; doubled for each further one. @default 30000 */
  retryDelayMs?: number
  /** Longest wait between attempts. @default 3600000 (an hour) */
  retryDelayMaxMs?: number
  /** Longest wait for the connection to a receiver; at most `timeoutMs`. @default 5000 */
  connectTimeoutMs?: number
  /** Longest one attempt may take, DNS to status; at most 60000. @default 15000 */
  timeoutMs?: number
  /** Most bytes of a receiver's answer read (then discarded). @default 65536 */
  maxResponseBytes?: number
  /**
   * How often a delivering process looks for pending deliveries overdue by this long, and
   * schedules them again: those whose task was lost (a process that only records and died, a
   * task the queue dropped after its reruns). @default 60000
   */
  sweepIntervalMs?: number
  /**
   * How long a delivery that ended (delivered, or failed for good) is kept after its last
   * change; each sweep deletes at most `pruneBatchSize` of the older ones. `Infinity` keeps
   * them all. @default 2592000000 (30 days)
   */
  retainEndedMs?: number
  /** Most ended deliveries one sweep deletes (one statement). @default 1000 */
  pruneBatchSize?: number
  /** Deliver from this process: `false` for a process that only records deliveries. @default { concurrency: 4 } */
  worker?: false | { concurrency?: number }
  /** Resolves receiver host names (tests inject one). @default dns.promises.lookup */
  resolve?: AddressResolver
  /** Where failures are reported. @default the service's logger */
  logger?: Logger
  /**
   * Told about every attempt once it is recorded, with the delivery as it is then (`state`,
   * `lastStatus`, `lastError`): for metrics. What it throws is logged. @default nothing
   */
  onAttempt?: (delivery: WebhookDelivery) => void
}

export interface ResolvedEndpoint {
  id: string
  url: URL
  secret: string
  events: ReadonlySet<WebhookEventType>
  owner: Owner | undefined
}

export interface ResolvedWebhookOptions {
  endpoints: ReadonlyMap<string, ResolvedEndpoint>
  allowPrivateAddresses: boolean
  maxAttempts: number
  retryDelayMs: number
  retryDelayMaxMs: number
  connectTimeoutMs: number
  timeoutMs: number
  maxResponseBytes: number
  workerConcurrency: number | null
  sweepIntervalMs: number
  retainEndedMs: number
  pruneBatchSize: number
  resolve: AddressResolver | undefined
  onAttempt: (delivery: WebhookDelivery) => void
}

/** Longest one attempt may take: half the pg-boss webhook queue's task expiry. */
const MAX_TIMEOUT_MS = 60_000
/** Most deliveries one sweep's delete may take: a statement short enough not to hold the table. */
const MAX_PRUNE_BATCH = 10_000
const ENDPOINT_ID = /^[A-Za-z0-9_.-]{1,64}$/
const SECRET = /^whsec_[A-Za-z0-9+/]+={0,2}$/

/** Checks the webhook options (every URL without DNS, every secret) and fills in the defaults. */
export function resolveWebhookOptions(options: WebhookOptions): ResolvedWebhookOptions {
  const allowPrivateAddresses = options.allowPrivateAddresses ?? false
  if (!Array.isArray(options.endpoints)) {
    throw new ConfigurationError('webhooks: option "endpoints" must be an array')
  }
  const endpoints = new Map<string, ResolvedEndpoint>()
  for (const [index, endpoint] of options.endpoints.entries()) {
    const resolved = resolveEndpoint(endpoint, index, allowPrivateAddresses)
    if (endpoints.has(resolved.id)) {
      throw new ConfigurationError(`webhooks: two endpoints have the id ${resolved.id}`)
    }
    endpoints.set(resolved.id, resolved)
  }
  const worker = options.worker ?? {}
  const resolved: ResolvedWebhookOptions = {
    endpoints,
    allowPrivateAddresses,
    maxAttempts: options.maxAttempts ?? 8,
    retryDelayMs: options.retryDelayMs ?? 30_000,
    retryDelayMaxMs: options.retryDelayMaxMs ?? 3_600_000,
    connectTimeoutMs: options.connectTimeoutMs ?? 5000,
    timeoutMs: options.timeoutMs ?? 15_000,
    maxResponseBytes: options.maxResponseBytes ?? 65_536,
    workerConcurrency: worker === false ? null : (worker.concurrency ?? 4),
    sweepIntervalMs: options.sweepIntervalMs ?? 60_000,
    retainEndedMs: checkCountOrUnlimited(
      options.retainEndedMs ?? 30 * 86_400_000,
      'webhooks: option "retainEndedMs"',
    ),
    pruneBatchSize: options.pruneBatchSize ?? 1000,
    resolve: options.resolve,
    onAttempt: options.onAttempt ?? (() => {}),
  }
  check(isInt(resolved.maxAttempts, 1), 'maxAttempts', 'an integer ≥ 1')
  check(isInt(resolved.retryDelayMs, 0), 'retryDelayMs', 'an integer ≥ 0')
  check(
    isInt(resolved.retryDelayMaxMs, resolved.retryDelayMs),
    'retryDelayMaxMs',
    'an integer ≥ retryDelayMs',
  )
  // Below the webhook queue's task expiry (pg-boss: 120 s), which would run the attempt again
  // while it still runs.
  check(
    isInt(resolved.timeoutMs, 1) && resolved.timeoutMs <= MAX_TIMEOUT_MS,
    'timeoutMs',
    `an integer from 1 to ${MAX_TIMEOUT_MS}`,
  )
  check(
    isInt(resolved.connectTimeoutMs, 1) && resolved.connectTimeoutMs <= resolved.timeoutMs,
    'connectTimeoutMs',
    'an integer from 1 to timeoutMs',
  )
  check(isInt(resolved.maxResponseBytes, 0), 'maxResponseBytes', 'an integer ≥ 0')
  check(
    isInt(resolved.sweepIntervalMs, 10) && resolved.sweepIntervalMs <= 2_147_483_647,
    'sweepIntervalMs',
    'an integer from 10 to 2147483647',
  )
  check(
    isInt(resolved.pruneBatchSize, 1) && resolved.pruneBatchSize <= MAX_PRUNE_BATCH,
    'pruneBatchSize',
    `an integer from 1 to ${MAX_PRUNE_BATCH}`,
  )
  if (resolved.workerConcurrency !== null) {
    check(isInt(resolved.workerConcurrency, 1), 'worker.concurrency', 'an integer ≥ 1')
  }
  return resolved
}

function resolveEndpoint(
  endpoint: WebhookEndpointOptions,
  index: number,
  allowPrivateAddresses: boolean,
): ResolvedEndpoint {
  const name = `webhooks: endpoints[${index}]`
  let url: URL
  try {
    url = checkWebhookUrl(endpoint?.url, { allowPrivateAddresses })
  } catch (error) {
    if (!(error instanceof WebhookUrlError)) throw error
    throw new ConfigurationError(`${name}.url: ${error.message}`)
  }
  const id = endpoint.id ?? `ep_${createHash('sha256').update(url.href).digest('hex').slice(0, 16)}`
  if (!ENDPOINT_ID.test(id)) {
    throw new ConfigurationError(`${name}.id must be 1 to 64 letters, digits, "_", "." or "-"`)
  }
  const secret = endpoint.secret
  const bytes =
    typeof secret === 'string' && SECRET.test(secret)
      ? Buffer.from(secret.slice('whsec_'.length), 'base64').length
      : 0
  if (bytes < 24 || bytes > 64) {
    throw new ConfigurationError(
      `${name}.secret must be a Standard Webhooks secret: "whsec_" and 24 to 64 bytes in base64`,
    )
  }
  const events = endpoint.events ?? WEBHOOK_EVENT_TYPES
  for (const type of events) {
    if (!WEBHOOK_EVENT_TYPES.includes(type)) {
      throw new ConfigurationError(
        `${name}.events: unknown event type ${JSON.stringify(type)} (one of ${WEBHOOK_EVENT_TYPES.join(', ')})`,
      )
    }
  }
  if (endpoint.owner !== undefined && (typeof endpoint.owner !== 'string' || !endpoint.owner)) {
    throw new ConfigurationError(`${name}.owner must be a non-empty string`)
  }
  return { id, url, secret, events: new Set(events), owner: endpoint.owner }
}

function isInt(value: number, min: number): boolean {
  return Number.isInteger(value) && value >= min
}

function check(ok: boolean, option: string, expected: string): void {
  if (!ok) throw new ConfigurationError(`webhooks: option "${option}" must be ${expected}`)
}
