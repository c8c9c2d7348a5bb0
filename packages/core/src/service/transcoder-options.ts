import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigurationError } from '../errors.ts'
import { assertValidPrefix } from '../keys.ts'
import { consoleLogger } from '../logging/console-logger.ts'
import { type Prober, probeMedia } from '../media/ffprobe.ts'
import type { Owner } from '../model.ts'
import type { Engine } from '../ports/engine.ts'
import type { JobEventChannel } from '../ports/job-events.ts'
import type { Logger } from '../ports/logger.ts'
import type { Queue } from '../ports/queue.ts'
import type { Repository } from '../ports/repository.ts'
import type { Storage } from '../ports/storage.ts'
import { createPresetCatalog, type PresetCatalog } from '../presets/preset-catalog.ts'
import type { Preset } from '../presets/preset-schema.ts'
import type { WebhookOptions } from '../webhooks/webhook-options.ts'
import { type JobLimits, type ResolvedJobLimits, resolveJobLimits } from './job-limits.ts'

export interface TranscoderOptions {
  storage: Storage
  engine: Engine
  repository: Repository
  /** Hands jobs to workers. @default inProcessQueue() */
  queue?: Queue
  /** The preset catalog. @default createPresetCatalog() (the built-ins) */
  presets?: PresetCatalog
  /** Presets used when `transcode` is given none, by the kind of input. */
  defaultPresets?: { audio?: readonly string[]; video?: readonly string[] }
  /** Prefix of every storage key, ending with `/`. @default '' */
  keyPrefix?: string
  /** Where uploads are spooled while they are checked. @default `<os tmpdir>/transcodekit` */
  tmpDir?: string
  /** Largest accepted upload, in bytes. @default 10 GiB */
  maxInputBytes?: number
  /** Reads media facts from a local file. @default probeMedia (ffprobe) */
  probe?: Prober
  /**
   * Most probes of uploads running at once in this process; the others wait their turn, so
   * a burst of uploads does not start more ffprobe processes than there are cores.
   * @default os.availableParallelism()
   */
  probeConcurrency?: number
  /**
   * Run jobs in this process: `false` makes a process that only submits (an API server in
   * front of separate workers). @default { concurrency: 1 }
   */
  worker?: false | { concurrency?: number }
  /** How often a remote engine is asked for a job's status, and watchers re-read a job. @default 2000 */
  pollIntervalMs?: number
  /**
   * What one job may cost, checked on the input's probe before a job is created and again
   * before a worker starts it. @default see `JobLimits` (4 h, 4096×4096, 240 fps, 4 GiB)
   */
  limits?: JobLimits
  /** Where a job that ends in `error` is reported, with its code. @default consoleLogger() */
  logger?: Logger
  /**
   * Carries job changes between the processes that share the repository, so that `subscribe`
   * and `watch` see the jobs that workers elsewhere run as they change (kysely's
   * `pgJobEventChannel` on PostgreSQL). One the app passes is not closed by the service.
   * @default inProcessJobEvents() (this service only)
   */
  jobEvents?: JobEventChannel
  /**
   * How often `watch` re-reads its job besides the change notices: how soon other processes'
   * changes are seen where no `jobEvents` channel carries them. @default pollIntervalMs
   */
  watchIntervalMs?: number
  /**
   * Signed webhooks (Standard Webhooks) for every job state change and asset made or
   * deleted, to any number of endpoints; recorded in the repository's `webhookStore()` and
   * retried through the queue's `webhookQueue()` when they offer them. @default none
   */
  webhooks?: WebhookOptions
}

/** Whose resources a call may see and change. */
export interface OwnerScope {
  /**
   * Only this owner's resources: another owner's answer as missing (`NotFoundError`), so
   * that nothing tells the caller they exist. Left out, any owner's: for trusted callers
   * (workers, CMS adapters), never for a client's request. @default undefined
   */
  owner?: Owner
}

export interface IngestOptions {
  /** Who the asset belongs to. @default DEFAULT_OWNER */
  owner?: Owner
  /** The client's file name: kept as metadata only. */
  filename?: string | null
  signal?: AbortSignal
  /** Overrides `maxInputBytes` for this call. */
  maxBytes?: number
  /**
   * When ffprobe reads the upload. `'now'`: before the asset is recorded, so that what is not
   * media is refused at once. `'deferred'`: the asset is recorded with `media: null` (the
   * cheap sniff still refuses text at once) and the worker probes it before its first job
   * runs, failing that job with the code the upload would have got (`UNSUPPORTED_MEDIA`, a
   * limit's). For bulk imports, whose acceptance must not wait for one process per file;
   * the job must name its presets. @default 'now'
   */
  probe?: 'now' | 'deferred'
}

export interface TranscodeOptions extends OwnerScope {
  /** Preset ids or aliases; default: `defaultPresets` for the kind of input. */
  presets?: readonly string[]
  /**
   * Presets of this job only, not of the catalog (an Elastic Transcoder custom preset of one
   * owner): each is checked like a catalog preset (`validatePreset`), asked for in `presets`
   * by its id, and kept with the job's output, which runs from that copy. @default []
   */
  customPresets?: readonly Preset[]
  /** The same key always gives the same job. */
  idempotencyKey?: string | null
}

export interface IngestAndTranscodeOptions extends IngestOptions, TranscodeOptions {
  /**
   * Look the idempotency key up before reading the body, so that a retried request stores
   * nothing (its body is only hashed, to tell a retry from a conflict). `false` for a caller
   * that has just looked it up itself (the CMS adapter, whose resend must not even open the
   * original): a job made under the key meanwhile is still found by the repository's unique
   * key, and the asset stored for nothing removed. @default true
   */
  lookUpKeyFirst?: boolean
}

/** The service's settings, every default applied: what its parts are given. */
export interface ServiceSettings {
  keyPrefix: string
  tmpDir: string
  maxInputBytes: number
  probe: Prober
  probeConcurrency: number
  pollIntervalMs: number
  watchIntervalMs: number
  defaultPresets: { audio: readonly string[]; video: readonly string[] }
  limits: ResolvedJobLimits
  logger: Logger
  presets: PresetCatalog
}

const DEFAULT_PRESETS = { audio: ['aac-256k', 'waveform'], video: ['mp4-720p', 'thumbnail'] }

/** Applies the defaults to the settings in `options` and checks them; `options` is not changed. */
export function resolveTranscoderOptions(options: TranscoderOptions): ServiceSettings {
  const probeConcurrency = options.probeConcurrency ?? availableParallelism()
  if (!Number.isInteger(probeConcurrency) || probeConcurrency < 1) {
    throw new ConfigurationError(
      'createTranscoder: option "probeConcurrency" must be an integer ≥ 1',
    )
  }
  const keyPrefix = options.keyPrefix ?? ''
  assertValidPrefix(keyPrefix)
  const presets = options.presets ?? createPresetCatalog()
  const defaultPresets = {
    audio: options.defaultPresets?.audio ?? DEFAULT_PRESETS.audio,
    video: options.defaultPresets?.video ?? DEFAULT_PRESETS.video,
  }
  const pollIntervalMs = options.pollIntervalMs ?? 2000
  const watchIntervalMs = options.watchIntervalMs ?? pollIntervalMs
  if (!Number.isFinite(watchIntervalMs) || watchIntervalMs <= 0) {
    throw new ConfigurationError('createTranscoder: option "watchIntervalMs" must be a number > 0')
  }
  // An unknown default preset fails at start, not at the first upload.
  presets.resolveAll([...defaultPresets.audio, ...defaultPresets.video])
  return {
    keyPrefix,
    tmpDir: options.tmpDir ?? join(tmpdir(), 'transcodekit'),
    maxInputBytes: options.maxInputBytes ?? 10 * 1024 ** 3,
    probe: options.probe ?? probeMedia,
    probeConcurrency,
    pollIntervalMs,
    watchIntervalMs,
    defaultPresets,
    limits: resolveJobLimits(options.limits),
    logger: options.logger ?? consoleLogger(),
    presets,
  }
}
