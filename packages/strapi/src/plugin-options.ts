import { ConfigurationError, type TranscodeService } from '@transcodekit/core'
import type { OriginalReader } from './lifecycle-adapter.ts'
import { type MediaRule, resolveRules } from './media-rules.ts'
import type { RetryPolicy } from './retry-tasks.ts'
import type { StrapiHost } from './strapi-host.ts'

/** How the plugin builds its own `TranscodeService` when none is given. */
export interface TranscoderSettings {
  /**
   * Folder of the transcodekit storage (originals copied in, outputs).
   * @default '<public>/uploads/transcodekit', served by Strapi under `/uploads/transcodekit/`
   */
  dataDir?: string
  /** URL prefix the outputs are served under. @default '/uploads/transcodekit/' */
  publicUrl?: string
  /**
   * PostgreSQL URL of a transcodekit database of its own (`@transcodekit/kysely`, shared with
   * `@transcodekit/cli` workers and servers). `null`: jobs, outputs and the work queue are kept
   * in Strapi's own database (SQLite, PostgreSQL or MySQL/MariaDB, tables `transcodekit_*`),
   * so they survive a restart and every Strapi process on that database shares them.
   * @default null
   */
  databaseUrl?: string | null
  /**
   * Run jobs (ffmpeg) in this Strapi process. `false`: another process on the same database
   * runs them (another Strapi process with `worker: true`). @default true
   */
  worker?: boolean
  /** Jobs run at once by this process. @default 1 */
  concurrency?: number
  /**
   * Keep originals and outputs in S3 (`@transcodekit/aws`) instead of `dataDir`.
   * @default null (local folder)
   */
  s3?: S3Settings | null
}

export interface S3Settings {
  bucket: string
  /** Key prefix, empty or ending with `/`. @default 'transcodekit/' */
  prefix?: string
  region?: string
  /** For an S3-compatible service (MinIO, s3rver). */
  endpoint?: string
  forcePathStyle?: boolean
  accessKeyId?: string
  secretAccessKey?: string
  /**
   * Base URL of the bucket when its objects are public (a CDN): outputs are recorded as
   * `publicUrl + key`. Without it they are recorded as presigned URLs, which expire.
   */
  publicUrl?: string
}

/** `config/plugins.ts` → `transcodekit.config`. */
export interface TranscodekitPluginConfig {
  /**
   * Which uploads are transcoded to what; the first match wins, no match means no job.
   * @default [{ mime: 'audio/*', presets: ['aac-256k'] }, { mime: 'video/*', presets: ['mp4-720p', 'thumbnail'] }]
   */
  rules?: MediaRule[]
  /**
   * The service to submit to: an instance (never closed by the plugin) or a factory called at
   * bootstrap (its service is closed on destroy). @default built from `transcoder`
   */
  service?:
    | TranscodeService
    | ((context: { strapi: StrapiHost }) => TranscodeService | Promise<TranscodeService>)
  transcoder?: TranscoderSettings
  /** Opens an original; @default the upload provider's (local folder, or its URL) */
  readOriginal?: OriginalReader
  /** How a failed submission or recording is retried. */
  retry?: RetryPolicy
  /** Ingestions at once. @default 2 */
  concurrency?: number
  /** @default 'strapi:file:' */
  keyPrefix?: string
  /**
   * When an original is probed: by the worker before its job runs (a bulk import is accepted
   * at the database's pace; a file that is not media fails its job), or before the job is
   * made. See the lifecycle adapter's `probe`. @default 'deferred'
   */
  probe?: 'now' | 'deferred'
}

export interface ResolvedPluginOptions {
  rules: MediaRule[]
  service: TranscodekitPluginConfig['service'] | null
  transcoder: Required<Omit<TranscoderSettings, 'dataDir' | 's3'>> & {
    dataDir: string | null
    s3: (S3Settings & { prefix: string }) | null
  }
  readOriginal: OriginalReader | null
  retry: Required<RetryPolicy>
  concurrency: number
  keyPrefix: string
  probe: 'now' | 'deferred'
}

export const DEFAULT_RULES: readonly MediaRule[] = Object.freeze([
  { mime: 'audio/*', presets: ['aac-256k'] },
  { mime: 'video/*', presets: ['mp4-720p', 'thumbnail'] },
])

/**
 * Copies and checks the plugin's options (Strapi calls this as the config validator at
 * start, so a bad `config/plugins.ts` stops the boot with a message naming the option).
 */
export function resolvePluginOptions(input: unknown): ResolvedPluginOptions {
  const config = (input ?? {}) as TranscodekitPluginConfig
  if (typeof config !== 'object' || Array.isArray(config)) {
    throw new ConfigurationError('transcodekit: the plugin config must be an object')
  }
  const known = [
    'rules',
    'service',
    'transcoder',
    'readOriginal',
    'retry',
    'concurrency',
    'keyPrefix',
    'probe',
  ]
  for (const key of Object.keys(config)) {
    if (!known.includes(key)) {
      throw new ConfigurationError(
        `transcodekit: unknown option "${key}" (known: ${known.join(', ')})`,
      )
    }
  }
  const rules = resolveRules(config.rules ?? DEFAULT_RULES, 'transcodekit.rules')
  const service = config.service ?? null
  if (
    service !== null &&
    typeof service !== 'function' &&
    typeof service.ingestAndTranscode !== 'function'
  ) {
    throw new ConfigurationError(
      'transcodekit.service must be a TranscodeService or a function returning one',
    )
  }
  const t = config.transcoder ?? {}
  if (typeof t !== 'object' || t === null)
    throw new ConfigurationError('transcodekit.transcoder must be an object')
  const dataDir = t.dataDir ?? null
  if (dataDir !== null && (typeof dataDir !== 'string' || dataDir.length === 0)) {
    throw new ConfigurationError('transcodekit.transcoder.dataDir must be a non-empty path')
  }
  const publicUrl = t.publicUrl ?? '/uploads/transcodekit/'
  if (typeof publicUrl !== 'string' || !publicUrl.endsWith('/')) {
    throw new ConfigurationError(
      'transcodekit.transcoder.publicUrl must be a URL prefix ending with "/"',
    )
  }
  const databaseUrl = t.databaseUrl ?? null
  if (
    databaseUrl !== null &&
    (typeof databaseUrl !== 'string' || !/^postgres(ql)?:\/\//.test(databaseUrl))
  ) {
    throw new ConfigurationError(
      'transcodekit.transcoder.databaseUrl must be a postgres:// URL or null',
    )
  }
  const worker = t.worker ?? true
  if (typeof worker !== 'boolean')
    throw new ConfigurationError('transcodekit.transcoder.worker must be a boolean')
  const transcoderConcurrency = positiveInteger(
    t.concurrency ?? 1,
    'transcodekit.transcoder.concurrency',
  )
  const s3 = resolveS3(t.s3 ?? null)
  if (config.readOriginal !== undefined && typeof config.readOriginal !== 'function') {
    throw new ConfigurationError('transcodekit.readOriginal must be a function')
  }
  const retry = config.retry ?? {}
  const resolvedRetry = {
    initialDelayMs: positiveInteger(
      retry.initialDelayMs ?? 1000,
      'transcodekit.retry.initialDelayMs',
    ),
    maxDelayMs: positiveInteger(retry.maxDelayMs ?? 60_000, 'transcodekit.retry.maxDelayMs'),
    maxAttempts: positiveInteger(retry.maxAttempts ?? 30, 'transcodekit.retry.maxAttempts'),
  }
  const keyPrefix = config.keyPrefix ?? 'strapi:file:'
  if (typeof keyPrefix !== 'string' || keyPrefix.length === 0 || keyPrefix.length > 200) {
    throw new ConfigurationError('transcodekit.keyPrefix must be a string of 1 to 200 characters')
  }
  const probe = config.probe ?? 'deferred'
  if (probe !== 'now' && probe !== 'deferred') {
    throw new ConfigurationError('transcodekit.probe must be "now" or "deferred"')
  }
  return {
    rules,
    service,
    transcoder: { dataDir, publicUrl, databaseUrl, worker, concurrency: transcoderConcurrency, s3 },
    readOriginal: config.readOriginal ?? null,
    retry: resolvedRetry,
    concurrency: positiveInteger(config.concurrency ?? 2, 'transcodekit.concurrency'),
    keyPrefix,
    probe,
  }
}

function resolveS3(s3: S3Settings | null): (S3Settings & { prefix: string }) | null {
  if (s3 === null) return null
  if (typeof s3 !== 'object')
    throw new ConfigurationError('transcodekit.transcoder.s3 must be an object or null')
  if (typeof s3.bucket !== 'string' || s3.bucket.length < 3) {
    throw new ConfigurationError('transcodekit.transcoder.s3.bucket must be a bucket name')
  }
  const prefix = s3.prefix ?? 'transcodekit/'
  if (typeof prefix !== 'string' || (prefix !== '' && !prefix.endsWith('/'))) {
    throw new ConfigurationError('transcodekit.transcoder.s3.prefix must be empty or end with "/"')
  }
  for (const key of [
    'region',
    'endpoint',
    'accessKeyId',
    'secretAccessKey',
    'publicUrl',
  ] as const) {
    if (s3[key] !== undefined && s3[key] !== null && typeof s3[key] !== 'string') {
      throw new ConfigurationError(`transcodekit.transcoder.s3.${key} must be a string`)
    }
  }
  if (s3.publicUrl && !/^https?:\/\/.+\/$/.test(s3.publicUrl)) {
    throw new ConfigurationError(
      'transcodekit.transcoder.s3.publicUrl must be an http(s) URL ending with "/"',
    )
  }
  return { ...s3, prefix }
}

function positiveInteger(value: unknown, option: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new ConfigurationError(
      `${option} must be a positive integer; got ${JSON.stringify(value)}`,
    )
  }
  return value
}
