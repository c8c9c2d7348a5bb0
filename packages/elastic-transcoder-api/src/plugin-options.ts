import assert from 'node:assert/strict'
import {
  checkCountOrUnlimited,
  consoleLogger,
  type Logger,
  type Owner,
  type Storage,
  type TranscodeService,
} from '@transcodekit/core'
import type { EtAccessKey } from './sigv4-verifier.ts'
import type { EtStore } from './store/et-store.ts'
import { memoryEtStore } from './store/memory-et-store.ts'

/** Publishes a message to an SNS topic: `(input) => snsClient.send(new PublishCommand(input))`. */
export type SnsPublish = (input: {
  TopicArn: string
  Subject: string
  Message: string
}) => Promise<unknown>

export interface ElasticTranscoderApiOptions {
  /** The service jobs run through. The plugin does not close it: whoever made it does. */
  service: TranscodeService
  /** The access keys requests are signed with; each acts for its own owner. At least one. */
  keys: readonly EtAccessKey[]
  /**
   * The storage of each bucket name a pipeline may use as its `InputBucket` or
   * `OutputBucket`: an S3 bucket (`s3Storage` of `@transcodekit/aws`) or a local folder
   * (`localStorage`). A pipeline naming any other bucket is refused.
   */
  buckets: Readonly<Record<string, Storage>>
  /** Where pipelines and the ET side of jobs are kept. @default memoryEtStore() */
  store?: EtStore
  /** The region in the ARNs the API answers with. @default 'us-east-1' */
  region?: string
  /** The account id in the ARNs the API answers with. @default '000000000000' */
  accountId?: string
  /** How far a request's `X-Amz-Date` may be from now, as AWS allows. @default 900_000 (15 min) */
  maxClockSkewMs?: number
  /** The largest request body, in bytes. @default 65_536 */
  bodyLimit?: number
  /** Items per page of the List operations (ET answers up to 50). @default 50 */
  pageSize?: number
  /**
   * How many unfinished jobs (Submitted or Progressing) one owner may have: CreateJob past it
   * answers ET's LimitExceededException (429). @default 100
   */
  maxActiveJobsPerOwner?: number
  /**
   * How many pipelines one owner may have: CreatePipeline past it answers ET's
   * LimitExceededException (429), as AWS does past its per-account quota. @default 200
   */
  maxPipelinesPerOwner?: number
  /**
   * How many custom presets one owner may have: CreatePreset past it answers ET's
   * LimitExceededException (429). @default 50
   */
  maxPresetsPerOwner?: number
  /** Publishes pipeline notifications whose target is an SNS topic ARN. @default undefined (such notifications are logged and dropped) */
  snsPublish?: SnsPublish
  /**
   * Which SNS topics a pipeline may name as a notification target. The server publishes with
   * its own AWS credentials, not the client's role: a topic it may publish to but the client
   * should not (another tenant's, or one the server itself listens to) must be refused here.
   * @default () => false (every topic refused: allow-list the ones clients may name)
   */
  snsTopicAllowed?: (topicArn: string) => boolean
  /**
   * Which `http(s)://` URLs a pipeline may name as a notification target instead of an SNS
   * topic. Every URL is refused unless allowed here: a client-chosen URL the server calls is
   * a server-side request forgery vector. @default () => false
   */
  notificationUrlAllowed?: (url: URL) => boolean
  /**
   * How often the jobs not ended yet are brought up to date with their core jobs, for those
   * that another process runs (separate workers): this process sees only its own events.
   * `0`: only on events, reads and listings. @default 5_000
   */
  syncIntervalMs?: number
  /**
   * How long the process copying a job's outputs to their bucket holds the job: past it,
   * the job is taken for abandoned (its process died) and another process copies what is
   * left. Longer than the slowest copy of a job's outputs. @default 1_800_000 (30 min)
   */
  deliveryLeaseMs?: number
  /** How long one HTTP notification may take. @default 10_000 */
  notificationTimeoutMs?: number
  /** Where failures of background work are reported. @default consoleLogger() */
  logger?: Logger
}

export interface ResolvedEtOptions {
  service: TranscodeService
  keys: readonly EtAccessKey[]
  buckets: ReadonlyMap<string, Storage>
  /** Whether an owner's pipelines may use a bucket (configured, and among its keys' buckets). */
  bucketAllowed: (owner: Owner, bucket: string) => boolean
  store: EtStore
  arnPrefix: string
  maxClockSkewMs: number
  bodyLimit: number
  pageSize: number
  maxActiveJobsPerOwner: number
  maxPipelinesPerOwner: number
  maxPresetsPerOwner: number
  syncIntervalMs: number
  deliveryLeaseMs: number
  snsPublish: SnsPublish | null
  notificationUrlAllowed: (url: URL) => boolean
  snsTopicAllowed: (topicArn: string) => boolean
  notificationTimeoutMs: number
  logger: Logger
}

export function resolveOptions(input: ElasticTranscoderApiOptions): ResolvedEtOptions {
  const options = { ...input }
  assert.ok(options.service, 'elastic-transcoder-api: option "service" is required')
  assert.ok(
    Array.isArray(options.keys) && options.keys.length > 0,
    'elastic-transcoder-api: option "keys" needs at least one access key',
  )
  for (const key of options.keys) {
    assert.ok(
      typeof key.accessKeyId === 'string' && /^[A-Za-z0-9]{1,128}$/.test(key.accessKeyId),
      'elastic-transcoder-api: option "keys": each accessKeyId is 1 to 128 letters or digits',
    )
    assert.ok(
      typeof key.secretAccessKey === 'string' && key.secretAccessKey.length >= 16,
      `elastic-transcoder-api: option "keys": the secret of ${key.accessKeyId} has at least 16 characters`,
    )
  }
  assert.ok(
    options.buckets && typeof options.buckets === 'object',
    'elastic-transcoder-api: option "buckets" maps bucket names to storages',
  )
  const buckets = new Map(Object.entries(options.buckets))
  // Each owner's buckets: the union of its keys' lists; null (every bucket) if one has none.
  const bucketsOf = new Map<Owner, Set<string> | null>()
  for (const key of options.keys) {
    const owner = key.owner ?? key.accessKeyId
    for (const name of key.buckets ?? []) {
      assert.ok(
        buckets.has(name),
        `elastic-transcoder-api: option "keys": ${key.accessKeyId} names the bucket ${name}, which "buckets" does not have`,
      )
    }
    const known = bucketsOf.get(owner)
    if (known === null || !key.buckets) bucketsOf.set(owner, null)
    else bucketsOf.set(owner, new Set([...(known ?? []), ...key.buckets]))
  }
  const bucketAllowed = (owner: Owner, bucket: string) => {
    if (!buckets.has(bucket)) return false
    const allowed = bucketsOf.get(owner)
    return allowed === null || allowed?.has(bucket) === true
  }
  const region = options.region ?? 'us-east-1'
  const accountId = options.accountId ?? '000000000000'
  assert.match(region, /^[a-z0-9-]{1,32}$/, 'elastic-transcoder-api: option "region"')
  assert.match(accountId, /^\d{12}$/, 'elastic-transcoder-api: option "accountId" has 12 digits')
  const maxClockSkewMs = options.maxClockSkewMs ?? 900_000
  const bodyLimit = options.bodyLimit ?? 65_536
  const notificationTimeoutMs = options.notificationTimeoutMs ?? 10_000
  const deliveryLeaseMs = options.deliveryLeaseMs ?? 1_800_000
  const maxActiveJobsPerOwner = checkCountOrUnlimited(
    options.maxActiveJobsPerOwner ?? 100,
    'elastic-transcoder-api: option "maxActiveJobsPerOwner"',
  )
  const maxPipelinesPerOwner = options.maxPipelinesPerOwner ?? 200
  const maxPresetsPerOwner = options.maxPresetsPerOwner ?? 50
  for (const [name, value] of Object.entries({ maxPipelinesPerOwner, maxPresetsPerOwner })) {
    assert.ok(
      Number.isInteger(value) && value >= 1,
      `elastic-transcoder-api: option "${name}" must be an integer ≥ 1`,
    )
  }
  const syncIntervalMs = options.syncIntervalMs ?? 5_000
  assert.ok(
    Number.isInteger(syncIntervalMs) && syncIntervalMs >= 0,
    'elastic-transcoder-api: option "syncIntervalMs" must be an integer ≥ 0',
  )
  const pageSize = options.pageSize ?? 50
  assert.ok(
    Number.isInteger(pageSize) && pageSize >= 1 && pageSize <= 1000,
    'elastic-transcoder-api: option "pageSize" must be an integer from 1 to 1000',
  )
  for (const [name, value] of Object.entries({
    maxClockSkewMs,
    bodyLimit,
    notificationTimeoutMs,
    deliveryLeaseMs,
  })) {
    assert.ok(
      Number.isFinite(value) && value > 0,
      `elastic-transcoder-api: option "${name}" must be a positive number`,
    )
  }
  return {
    service: options.service,
    keys: options.keys.map((key) => ({
      ...key,
      ...(key.buckets ? { buckets: [...key.buckets] } : {}),
    })),
    buckets,
    bucketAllowed,
    store: options.store ?? memoryEtStore(),
    arnPrefix: `arn:aws:elastictranscoder:${region}:${accountId}`,
    maxClockSkewMs,
    bodyLimit,
    pageSize,
    maxActiveJobsPerOwner,
    maxPipelinesPerOwner,
    maxPresetsPerOwner,
    syncIntervalMs,
    deliveryLeaseMs,
    snsPublish: options.snsPublish ?? null,
    notificationUrlAllowed: options.notificationUrlAllowed ?? (() => false),
    snsTopicAllowed: options.snsTopicAllowed ?? (() => false),
    notificationTimeoutMs,
    logger: options.logger ?? consoleLogger(),
  }
}
