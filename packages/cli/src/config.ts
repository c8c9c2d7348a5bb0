import { mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import {
  consoleLogger,
  createTranscoder,
  type Engine,
  errorText,
  type FfmpegEngineOptions,
  ffmpegEngine,
  type JobEventChannel,
  type JobLimits,
  type JobState,
  type Logger,
  localStorage,
  memoryRepository,
  type NotificationVerifier,
  type Queue,
  type Repository,
  type Storage,
  type TranscodeService,
} from '@transcodekit/core'
import type { Kysely } from 'kysely'
import { parseApiKeys } from './api-keys.ts'
import {
  type ElasticTranscoderConfig,
  elasticTranscoderConfig,
  etBucketOverlapProblems,
} from './elastic-transcoder-config.ts'
import { envList } from './env-list.ts'
import { memoryDatabaseProbe } from './ops/memory-database-probe.ts'
import {
  type PrometheusMetrics,
  prometheusMetrics,
  webhookOutcome,
} from './ops/prometheus-metrics.ts'
import { readWebhookConfig, type WebhookConfig, webhookOptions } from './webhook-config.ts'

/** The server's settings, read from the environment once at start. */
export interface ServerConfig {
  port: number
  host: string
  /** Where the embedded database, local files and spooled uploads live. */
  dataDir: string
  /**
   * PostgreSQL server; without it, PGlite (embedded PostgreSQL) in `dataDir`; `memory://` for
   * the in-memory repository (nothing kept).
   */
  databaseUrl: string | null
  /** `shared_buffers` of the embedded database (PGlite), e.g. `16MB`. */
  pgliteSharedBuffers: string
  /** PostgreSQL schema of the transcodekit tables (PGlite or server). */
  databaseSchema: string
  /** PostgreSQL schema of the pg-boss queue (server only). */
  queueSchema: string
  ffmpegPath: string | null
  maxUploadBytes: number
  /** Prefix of the API routes; the web page is at `/`. */
  apiPrefix: string
  /** Run transcoding jobs in this process (`false`: an API-only process in front of workers). */
  worker: boolean
  workerConcurrency: number
  storage:
    | { kind: 'local' }
    | {
        kind: 's3'
        bucket: string
        endpoint: string | null
        region: string
        forcePathStyle: boolean
        prefix: string
      }
  engine:
    | { kind: 'ffmpeg' }
    | {
        kind: 'elastic-transcoder'
        pipelineName: string
        /** An API-compatible endpoint instead of AWS's. */
        endpoint: string | null
        region: string
      }
    | {
        kind: 'mediaconvert'
        endpoint: string | null
        role: string
        queue: string | null
        region: string
      }
  snsTopicArns: string[]
  /**
   * Signs the file URLs of local storage and the HLS playlists of S3 (`FILE_URL_SECRET`, 32+
   * bytes); without it, a secret generated once and kept in `dataDir`, so links outlive
   * restarts.
   */
  fileUrlSecret: string | null
  /**
   * `API_KEYS`: each key (`key:owner` pairs) is an owner's, and the API wants one as
   * `Authorization: Bearer <key>`. `null`: the API is open, every request the one default
   * owner, and the server listens on this machine only unless `AUTH=none`.
   */
  apiKeys: ReadonlyMap<string, string> | null
  /**
   * `ALLOWED_HOSTS`: names (no port) a keyless API answers besides this machine's and `HOST`
   * (the `Host` a proxy or the network sends). Unused with `API_KEYS`.
   */
  allowedHosts: string[]
  /** Uploads one owner may start per minute (`RATE_LIMIT_UPLOADS`); 0: no limit. */
  uploadsPerMinute: number
  /**
   * Cancels, retries and deletes one owner may ask per minute, each (`RATE_LIMIT_JOB_ACTIONS`);
   * 0: no limit.
   */
  jobActionsPerMinute: number
  /** Jobs one owner may have waiting or running (`MAX_JOBS_PER_OWNER`); 0: no cap. */
  maxJobsPerOwner: number
  /**
   * What one job may cost, decided from the probe before it starts, for every engine
   * (`MAX_DURATION_SEC`, `MAX_FRAME_PIXELS`, `MAX_FRAME_RATE`, `MAX_OUTPUT_BYTES`; `0`: no
   * limit, `Infinity` here). Only the variables set are here: the others keep core's defaults.
   */
  jobLimits: JobLimits
  /**
   * The ffmpeg engine's guards while ffmpeg runs (`FFMPEG_TIMEOUT_SEC`,
   * `FFMPEG_STALL_TIMEOUT_SEC`, `FFMPEG_MAX_CPU_SEC`, `FFMPEG_MAX_MEMORY_BYTES`,
   * `FFMPEG_MAX_OUTPUT_BYTES`; `0`: off, except the timeout). Only the variables set are here:
   * the others keep the engine's defaults.
   */
  ffmpegGuards: FfmpegGuards
  /**
   * How long an upload's body may send nothing before it is cut (`UPLOAD_IDLE_TIMEOUT_MS`;
   * `0`: off); `undefined`: the Fastify plugin's default.
   */
  uploadIdleTimeoutMs: number | undefined
  /** Level of the JSON log lines (`LOG_LEVEL`), server, worker and core alike. */
  logLevel: LogLevel
  /**
   * `METRICS_TOKEN` (16+ bytes): `GET /metrics` wants it as `Authorization: Bearer <token>`.
   * Without it, `/metrics` is as open as the API when the API has no keys (this machine only,
   * unless `AUTH=none`), and not served at all when it has `API_KEYS`.
   */
  metricsToken: string | null
  /**
   * How often an open event stream re-reads its job besides the change notices
   * (`EVENTS_POLL_MS`); `null`: 2000 on PostgreSQL (the notices carry changes), 500 on the
   * embedded database (where the poll is how other processes' changes are seen).
   */
  eventsPollMs: number | null
  /** The signed webhook endpoint (`WEBHOOK_URL`, `WEBHOOK_SECRET`, `WEBHOOK_ALLOW_PRIVATE`, …), if any. */
  webhook: WebhookConfig | null
  /** The Elastic Transcoder API (`ET_API_KEYS`, `ET_BUCKETS`); `null`: not served. */
  elasticTranscoder: ElasticTranscoderConfig | null
}

/** The ffmpeg engine options `serve` and `worker` take from the environment. */
export type FfmpegGuards = Pick<
  FfmpegEngineOptions,
  'timeoutMs' | 'stallTimeoutMs' | 'maxCpuSec' | 'maxMemoryBytes' | 'maxOutputBytes'
>

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/** Whether `host` is an address of this machine only (a loopback name or address). */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase()
  return bare === 'localhost' || bare === '::1' || /^127(\.\d{1,3}){3}$/.test(bare)
}

/** Environment variables that are not valid, all of them at once. */
export class ConfigError extends Error {
  readonly problems: string[]

  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

/**
 * The data folder when `DATA_DIR` is not set: `.transcodekit` in the working folder, so a
 * `transcodekit worker` started next to `transcodekit serve` finds its embedded database.
 */
export const DEFAULT_DATA_DIR = '.transcodekit'

/**
 * `loadConfig` for a command: a bad environment is printed, every bad variable named, and
 * the process exits 1.
 */
export function loadConfigOrExit(
  env: Record<string, string | undefined>,
  defaults: { dataDir?: string | undefined },
): ServerConfig {
  try {
    return loadConfig(env, defaults)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    console.error(error.message)
    process.exit(1)
  }
}

/** Reads and checks the environment; throws a `ConfigError` naming every bad variable. */
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  defaults: { dataDir?: string | undefined } = {},
): ServerConfig {
  const problems: string[] = []
  const text = (name: string) => {
    const value = env[name]?.trim()
    return value === undefined || value === '' ? null : value
  }
  const integer = (name: string, fallback: number, min: number, max: number) => {
    const raw = text(name)
    if (raw === null) return fallback
    const value = Number(raw)
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max) {
      problems.push(`${name} must be an integer from ${min} to ${max} (got ${JSON.stringify(raw)})`)
      return fallback
    }
    return value
  }
  const oneOf = <T extends string>(name: string, values: readonly T[], fallback: T): T => {
    const raw = text(name)
    if (raw === null) return fallback
    if (!values.includes(raw as T)) {
      problems.push(`${name} must be one of ${values.join(', ')} (got ${JSON.stringify(raw)})`)
      return fallback
    }
    return raw as T
  }
  const boolean = (name: string, fallback: boolean) => {
    const raw = text(name)?.toLowerCase()
    if (raw === undefined || raw === null) return fallback
    if (['1', 'true', 'yes', 'on'].includes(raw)) return true
    if (['0', 'false', 'no', 'off'].includes(raw)) return false
    problems.push(`${name} must be true or false (got ${JSON.stringify(raw)})`)
    return fallback
  }
  // A limit in the environment: unset keeps the library's default (undefined), `0` lifts it
  // (Infinity) where `offIsZero`, and `scale` converts the variable's unit to the option's.
  const limit = (name: string, options: { max?: number; offIsZero?: boolean; scale?: number }) => {
    const { max = 1e12, offIsZero = true, scale = 1 } = options
    if (text(name) === null) return undefined
    const value = integer(name, Number.NaN, offIsZero ? 0 : 1, max)
    if (Number.isNaN(value)) return undefined
    return value === 0 && offIsZero ? Number.POSITIVE_INFINITY : value * scale
  }
  const required = (name: string, why: string) => {
    const value = text(name)
    if (value === null) problems.push(`${name} is required ${why}`)
    return value ?? ''
  }

  const databaseUrl = text('DATABASE_URL')
  if (
    databaseUrl !== null &&
    databaseUrl !== 'memory://' &&
    !/^postgres(ql)?:\/\//.test(databaseUrl)
  ) {
    problems.push('DATABASE_URL must be a postgres:// or postgresql:// URL, or memory://')
  }
  const identifier = (name: string, fallback: string) => {
    const value = text(name) ?? fallback
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(value)) {
      problems.push(
        `${name} must be a lower-case PostgreSQL identifier (got ${JSON.stringify(value)})`,
      )
    }
    return value
  }
  const databaseSchema = identifier('DATABASE_SCHEMA', 'transcodekit')
  const queueSchema = identifier('QUEUE_SCHEMA', 'pgboss')
  const pgliteSharedBuffers = text('PGLITE_SHARED_BUFFERS') ?? '16MB'
  if (!/^\d{1,6}(kB|MB|GB)$/.test(pgliteSharedBuffers)) {
    problems.push(
      `PGLITE_SHARED_BUFFERS must be a size like 16MB (got ${JSON.stringify(pgliteSharedBuffers)})`,
    )
  }
  const apiPrefix = text('API_PREFIX') ?? '/api'
  if (!/^(\/[A-Za-z0-9._-]+)+$/.test(apiPrefix)) {
    problems.push('API_PREFIX must look like /api (slash-separated letters, digits, . _ -)')
  }
  const region = text('AWS_REGION') ?? text('S3_REGION') ?? 'us-east-1'

  const storageKind = oneOf('STORAGE', ['local', 's3'] as const, 'local')
  const storage: ServerConfig['storage'] =
    storageKind === 's3'
      ? {
          kind: 's3',
          bucket: required('S3_BUCKET', 'when STORAGE=s3'),
          endpoint: text('S3_ENDPOINT'),
          region: text('S3_REGION') ?? region,
          forcePathStyle: boolean('S3_FORCE_PATH_STYLE', false),
          prefix: text('S3_PREFIX') ?? '',
        }
      : { kind: 'local' }

  const engineKind = oneOf(
    'ENGINE',
    ['ffmpeg', 'elastic-transcoder', 'mediaconvert'] as const,
    'ffmpeg',
  )
  let engine: ServerConfig['engine'] = { kind: 'ffmpeg' }
  if (engineKind === 'elastic-transcoder') {
    engine = {
      kind: 'elastic-transcoder',
      pipelineName: required('ET_PIPELINE_NAME', 'when ENGINE=elastic-transcoder'),
      endpoint: text('ET_ENDPOINT'),
      region,
    }
  } else if (engineKind === 'mediaconvert') {
    engine = {
      kind: 'mediaconvert',
      endpoint: text('MEDIACONVERT_ENDPOINT'),
      role: required('MEDIACONVERT_ROLE', 'when ENGINE=mediaconvert'),
      queue: text('MEDIACONVERT_QUEUE'),
      region,
    }
  }
  if (engineKind !== 'ffmpeg' && storageKind !== 's3') {
    problems.push(`ENGINE=${engineKind} reads and writes S3: set STORAGE=s3`)
  }
  const snsTopicArns = envList(text('SNS_TOPIC_ARNS'))
  for (const arn of snsTopicArns) {
    if (!/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]+$/.test(arn)) {
      problems.push(`SNS_TOPIC_ARNS: ${JSON.stringify(arn)} is not an SNS topic ARN`)
    }
  }

  const auth = text('AUTH')
  if (auth !== null && auth !== 'none') {
    problems.push(`AUTH must be none or unset (got ${JSON.stringify(auth)})`)
  }
  const apiKeysText = text('API_KEYS')
  const apiKeys = apiKeysText === null ? null : parseApiKeys(apiKeysText, problems)
  if (apiKeys && auth === 'none') {
    problems.push('API_KEYS and AUTH=none contradict each other: set one of them')
  }
  const host = text('HOST') ?? 'localhost'
  const allowedHosts = envList(text('ALLOWED_HOSTS'))
  for (const name of allowedHosts) {
    if (!/^([a-z0-9-]+\.)*[a-z0-9-]+$|^\[[0-9a-f:.]+\]$/i.test(name)) {
      problems.push(
        `ALLOWED_HOSTS: ${JSON.stringify(name)} is not a host name (no port, no scheme)`,
      )
    }
  }
  if (!apiKeys && auth !== 'none' && !isLoopback(host)) {
    problems.push(
      `HOST=${host} would open the API to the network with no access control: set API_KEYS ` +
        '(key:owner pairs), or AUTH=none to do so on purpose',
    )
  }

  const config: ServerConfig = {
    port: integer('PORT', 3000, 0, 65_535),
    host,
    dataDir: resolve(text('DATA_DIR') ?? defaults.dataDir ?? DEFAULT_DATA_DIR),
    databaseUrl,
    pgliteSharedBuffers,
    databaseSchema,
    queueSchema,
    ffmpegPath: text('FFMPEG_PATH'),
    maxUploadBytes: integer('MAX_UPLOAD_BYTES', 2 * 1024 ** 3, 1, 1024 ** 4),
    apiPrefix,
    worker: boolean('WORKER', true),
    workerConcurrency: integer('WORKER_CONCURRENCY', 1, 1, 64),
    storage,
    engine,
    snsTopicArns,
    fileUrlSecret: text('FILE_URL_SECRET'),
    apiKeys,
    allowedHosts: allowedHosts.map((name) => name.toLowerCase()),
    uploadsPerMinute: integer('RATE_LIMIT_UPLOADS', 30, 0, 1_000_000),
    jobActionsPerMinute: integer('RATE_LIMIT_JOB_ACTIONS', 60, 0, 1_000_000),
    maxJobsPerOwner: integer('MAX_JOBS_PER_OWNER', 10, 0, 1_000_000),
    jobLimits: defined({
      maxDurationSec: limit('MAX_DURATION_SEC', {}),
      maxFramePixels: limit('MAX_FRAME_PIXELS', {}),
      maxFrameRate: limit('MAX_FRAME_RATE', { max: 1_000_000 }),
      maxOutputBytes: limit('MAX_OUTPUT_BYTES', { max: Number.MAX_SAFE_INTEGER }),
    }),
    ffmpegGuards: defined({
      timeoutMs: limit('FFMPEG_TIMEOUT_SEC', { offIsZero: false, scale: 1000 }),
      stallTimeoutMs: limit('FFMPEG_STALL_TIMEOUT_SEC', { scale: 1000 }),
      maxCpuSec: limit('FFMPEG_MAX_CPU_SEC', {}),
      maxMemoryBytes: limit('FFMPEG_MAX_MEMORY_BYTES', { max: Number.MAX_SAFE_INTEGER }),
      maxOutputBytes: limit('FFMPEG_MAX_OUTPUT_BYTES', { max: Number.MAX_SAFE_INTEGER }),
    }),
    // 0 is the plugin's own "off".
    uploadIdleTimeoutMs:
      text('UPLOAD_IDLE_TIMEOUT_MS') === null
        ? undefined
        : integer('UPLOAD_IDLE_TIMEOUT_MS', 0, 0, 2_147_483_647),
    logLevel: oneOf('LOG_LEVEL', LOG_LEVELS, 'info'),
    metricsToken: text('METRICS_TOKEN'),
    eventsPollMs:
      text('EVENTS_POLL_MS') === null ? null : integer('EVENTS_POLL_MS', 2000, 100, 3_600_000),
    webhook: readWebhookConfig(
      text('WEBHOOK_URL'),
      text('WEBHOOK_SECRET'),
      {
        allowPrivateAddresses: boolean('WEBHOOK_ALLOW_PRIVATE', false),
        retryDelayMs: integer('WEBHOOK_RETRY_DELAY_MS', 30_000, 1000, 86_400_000),
        retainEndedMs: retentionMs(integer('WEBHOOK_RETAIN_DAYS', 30, 0, 36_500)),
      },
      problems,
    ),
    elasticTranscoder: elasticTranscoderConfig(
      text,
      {
        endpoint: text('S3_ENDPOINT'),
        region: text('S3_REGION') ?? region,
        forcePathStyle: boolean('S3_FORCE_PATH_STYLE', false),
      },
      snsTopicArns,
      problems,
    ),
  }
  if (config.elasticTranscoder) {
    problems.push(...etBucketOverlapProblems(config.elasticTranscoder, config))
  }
  if (config.metricsToken !== null && Buffer.byteLength(config.metricsToken) < 16) {
    problems.push('METRICS_TOKEN must be at least 16 bytes (e.g. `openssl rand -hex 16`)')
  }
  if (config.fileUrlSecret !== null && Buffer.byteLength(config.fileUrlSecret) < 32) {
    problems.push('FILE_URL_SECRET must be at least 32 bytes (e.g. `openssl rand -hex 32`)')
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return config
}

/** `WEBHOOK_RETAIN_DAYS` in the option's unit: 0 keeps ended deliveries for ever. */
function retentionMs(days: number): number {
  return days === 0 ? Number.POSITIVE_INFINITY : days * 86_400_000
}

/** `object` without its `undefined` properties: those keep the library's defaults. */
function defined<T extends object>(object: T): T {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined)) as T
}

export interface Services {
  service: TranscodeService
  /** SNS verification, when `SNS_TOPIC_ARNS` is set. */
  notifications: NotificationVerifier | null
  /** The database and schema of the repository; `null` with `DATABASE_URL=memory://`. */
  database: { db: Kysely<any>; schema: string } | null
  /** The database, as `/readyz` and `/metrics` read it. */
  databaseProbe: DatabaseProbe
  /**
   * The Prometheus registry of this process, following the service's jobs; its `recorder`
   * takes what other parts count (webhook deliveries, uploads).
   */
  metrics: PrometheusMetrics
  /** Closes what `createServices` made, in order: the service, then the queue and database. */
  close(): Promise<void>
}

/** What the operations routes ask of the database. */
export interface DatabaseProbe {
  /** Resolves when the database answers a query. */
  ping(): Promise<void>
  /** Jobs per state, every process's. */
  countJobsByState(): Promise<Record<JobState, number>>
}

/**
 * Builds the `TranscodeService` the configuration describes. The AWS adapters are loaded only
 * when selected, so the embedded defaults need no AWS SDK at start.
 */
export async function createServices(
  config: ServerConfig,
  options: {
    worker?: boolean
    /** Use the embedded database of a server on the same data folder (a separate worker). */
    attach?: boolean
    /**
     * Where the engine and the service log (the binaries in use, failed jobs): the process's
     * pino logger, so that they are JSON lines like the rest. @default core's consoleLogger()
     */
    logger?: Logger
  } = {},
): Promise<Services> {
  const closers: Array<() => Promise<void>> = []
  const logger = options.logger ?? consoleLogger()
  const close = async () => {
    for (const closeOne of closers.reverse()) {
      await closeOne().catch((error: unknown) => {
        logger.error({ error: errorText(error) }, 'transcodekit: a service did not close cleanly')
      })
    }
  }
  try {
    // Every owner's media, the database and the secrets: for the server's user only.
    await mkdir(config.dataDir, { recursive: true, mode: 0o700 })
    const aws =
      config.storage.kind === 's3' ||
      config.engine.kind !== 'ffmpeg' ||
      config.snsTopicArns.length > 0
        ? await import('@transcodekit/aws')
        : null

    let storage: Storage
    if (config.storage.kind === 's3') {
      const { S3Client } = await import('@aws-sdk/client-s3')
      const client = new S3Client({
        region: config.storage.region,
        forcePathStyle: config.storage.forcePathStyle,
        ...(config.storage.endpoint ? { endpoint: config.storage.endpoint } : {}),
      })
      closers.push(async () => client.destroy())
      storage = aws!.s3Storage({
        client,
        bucket: config.storage.bucket,
        prefix: config.storage.prefix,
      })
    } else {
      storage = localStorage({
        root: join(config.dataDir, 'files'),
        baseUrl: `${config.apiPrefix}/files/`,
      })
    }

    let engine: Engine
    // The remote engines read and write the S3 bucket of the storage, under its prefix.
    const bucket = config.storage.kind === 's3' ? config.storage : null
    if (config.engine.kind === 'elastic-transcoder') {
      const { ElasticTranscoderClient } = await import('@aws-sdk/client-elastic-transcoder')
      const client = new ElasticTranscoderClient({
        region: config.engine.region,
        ...(config.engine.endpoint ? { endpoint: config.engine.endpoint } : {}),
      })
      closers.push(async () => client.destroy())
      engine = aws!.elasticTranscoderEngine({
        client,
        pipelineName: config.engine.pipelineName,
        objectKeyPrefix: bucket!.prefix,
      })
    } else if (config.engine.kind === 'mediaconvert') {
      const { MediaConvertClient } = await import('@aws-sdk/client-mediaconvert')
      const client = new MediaConvertClient({
        region: config.engine.region,
        ...(config.engine.endpoint ? { endpoint: config.engine.endpoint } : {}),
      })
      closers.push(async () => client.destroy())
      engine = aws!.mediaConvertEngine({
        client,
        role: config.engine.role,
        bucket: bucket!.bucket,
        objectKeyPrefix: bucket!.prefix,
        ...(config.engine.queue ? { queue: config.engine.queue } : {}),
      })
    } else {
      engine = ffmpegEngine({
        ...config.ffmpegGuards,
        ...(config.ffmpegPath ? { ffmpegPath: config.ffmpegPath } : {}),
        tmpDir: join(config.dataDir, 'tmp', 'ffmpeg'),
        logger,
      })
    }

    const { repository, queue, database, databaseProbe, jobEvents } = await openPersistence(
      config,
      closers,
      options.attach ?? false,
      logger,
    )
    // Webhook attempts count into the metrics, which follow the service and so come after it.
    let counted: PrometheusMetrics['recorder'] | null = null
    const service = createTranscoder({
      storage,
      engine,
      repository,
      queue,
      tmpDir: join(config.dataDir, 'tmp', 'uploads'),
      maxInputBytes: config.maxUploadBytes,
      limits: config.jobLimits,
      logger,
      jobEvents,
      // Without a channel between processes (the embedded database), the watchers' poll is
      // how a separate worker's changes are seen: often enough for a live progress bar.
      watchIntervalMs: config.eventsPollMs ?? (jobEvents ? 2000 : 500),
      worker: (options.worker ?? config.worker) ? { concurrency: config.workerConcurrency } : false,
      ...(config.webhook && {
        webhooks: {
          ...webhookOptions(config.webhook),
          onAttempt: (delivery) => counted?.webhookDelivery(webhookOutcome(delivery.state)),
        },
      }),
    })
    closers.push(() => service.close())
    const metrics = prometheusMetrics({
      service,
      jobCounts: () => databaseProbe.countJobsByState(),
      queueDepth: service.queue.depth ? () => service.queue.depth!() : undefined,
    })
    counted = metrics.recorder
    closers.push(async () => metrics.close())
    const notifications =
      config.snsTopicArns.length > 0 ? aws!.snsVerifier({ topicArns: config.snsTopicArns }) : null
    return { service, notifications, database, databaseProbe, metrics, close }
  } catch (error) {
    await close()
    throw error
  }
}

/**
 * The database: PostgreSQL at `DATABASE_URL`, or else the embedded one (PGlite in the data
 * folder, run in a process of its own that serves the PostgreSQL protocol on a Unix socket), each
 * with pg-boss as the queue; or (`memory://`) the in-memory repository and in-process queue.
 *
 * A separate worker (`attach`) uses the embedded database of the server running on the same data
 * folder instead of starting one.
 */
async function openPersistence(
  config: ServerConfig,
  closers: Array<() => Promise<void>>,
  attach: boolean,
  logger: Logger,
): Promise<{
  repository: Repository
  queue?: Queue
  database: { db: Kysely<any>; schema: string } | null
  databaseProbe: DatabaseProbe
  /** Job changes between processes: PostgreSQL servers only (see pgJobEventChannel). */
  jobEvents?: JobEventChannel
}> {
  // Nothing kept across restarts: for trying things and for benchmarks.
  if (config.databaseUrl === 'memory://') {
    const repository = memoryRepository()
    return { repository, database: null, databaseProbe: memoryDatabaseProbe(repository) }
  }
  const kysely = await import('@transcodekit/kysely')
  const embeddedDir = join(config.dataDir, 'db')
  let url = config.databaseUrl
  if (url === null && attach) {
    url = kysely.embeddedPostgresUrl(embeddedDir)
  } else if (url === null) {
    const embedded = await kysely.startEmbeddedPostgres({
      dataDir: embeddedDir,
      // PGlite's WebAssembly memory only grows: its default 128MB of shared buffers alone
      // would cost more than the rest of the database process.
      postgresSettings: { shared_buffers: config.pgliteSharedBuffers },
    })
    closers.push(() => embedded.close())
    url = embedded.url
  }
  const opened = await kysely.openDatabase({ url, logger })
  closers.push(() => opened.close())
  await kysely.migrateToLatest(opened.db, { schema: config.databaseSchema }).catch((error) => {
    if (!attach || config.databaseUrl !== null) throw error
    throw new Error(
      `no embedded database is running in ${embeddedDir} (${String(error)}): ` +
        'start the server on this DATA_DIR first (transcodekit serve), or set DATABASE_URL',
    )
  })
  const repository = kysely.kyselyRepository({ db: opened.db, schema: config.databaseSchema })
  const queue = kysely.pgBossQueue({ connectionString: url, schema: config.queueSchema, logger })
  closers.push(() => queue.close())
  const database = { db: opened.db, schema: config.databaseSchema }
  const databaseProbe: DatabaseProbe = {
    ping: () => kysely.pingDatabase(opened.db),
    countJobsByState: () => kysely.countJobsByState(opened.db, { schema: config.databaseSchema }),
  }
  if (config.databaseUrl === null) return { repository, queue, database, databaseProbe }
  const jobEvents = kysely.pgJobEventChannel({
    connectionString: url,
    channel: `${config.databaseSchema}_jobs`.slice(0, 63),
    logger,
  })
  closers.push(() => jobEvents.close())
  await jobEvents.ready?.()
  return { repository, queue, database, databaseProbe, jobEvents }
}
