import { createHash, randomUUID } from 'node:crypto'
import { EventEmitter, on } from 'node:events'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import {
  AbortedError,
  ConfigurationError,
  IdempotencyConflictError,
  IncompatiblePresetError,
  InvalidRequestError,
  InvalidStateError,
  NotFoundError,
  outOfSpace,
  TooLargeError,
  TranscodeKitError,
  UnsupportedMediaError,
} from '../errors.ts'
import { assertValidPrefix, assetPrefix, jobPrefix, originalKey, outputKey } from '../keys.ts'
import { processTag, watchLeftovers } from '../leftovers/leftover-sweeper.ts'
import { consoleLogger } from '../logging/console-logger.ts'
import { type Prober, probeMedia } from '../media/ffprobe.ts'
import { describeMedia, sniffFileRejection } from '../media/sniff.ts'
import {
  type Asset,
  DEFAULT_OWNER,
  isTerminal,
  type Job,
  type Output,
  type Owner,
  type Page,
} from '../model.ts'
import type { Engine, EngineJobRequest, EngineStatus } from '../ports/engine.ts'
import type { Logger } from '../ports/logger.ts'
import type { Queue, QueueHandlerContext } from '../ports/queue.ts'
import type {
  JobPatch,
  ListAssetsRequest,
  ListJobsRequest,
  Repository,
} from '../ports/repository.ts'
import type { Storage } from '../ports/storage.ts'
import { createPresetCatalog, type PresetCatalog } from '../presets/preset-catalog.ts'
import { type Preset, presetNeeds } from '../presets/preset-schema.ts'
import { inProcessQueue } from '../queue/in-process-queue.ts'
import { ConcurrencyLimiter } from './concurrency-limiter.ts'
import {
  checkJobLimits,
  type JobLimits,
  type ResolvedJobLimits,
  resolveJobLimits,
} from './job-limits.ts'

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
}

export interface TranscodeOptions extends OwnerScope {
  /** Preset ids or aliases; default: `defaultPresets` for the kind of input. */
  presets?: readonly string[]
  /** The same key always gives the same job. */
  idempotencyKey?: string | null
}

/** Sent to subscribers whenever a job changes. */
export interface JobEvent {
  type: 'job.created' | 'job.updated'
  job: Job
}

/** How long a job still untaken may be waiting for its first hand-over before a duplicate
 * `transcode()` call hands it over again. */
const RESEND_GRACE_MS = 60_000

const DEFAULT_PRESETS = { audio: ['aac-256k', 'waveform'], video: ['mp4-720p', 'thumbnail'] }

/**
 * What everything else calls: the HTTP plugin, the CMS adapter, the workers.
 *
 * @example
 * const service = createTranscoder({ storage, engine: ffmpegEngine(), repository: memoryRepository() })
 * const asset = await service.ingest(fs.createReadStream('song.mp3'), { filename: 'song.mp3' })
 * const job = await service.transcode(asset.id, { presets: ['wav', 'flac', 'm4a'] })
 * for await (const update of service.watch(job.id)) console.log(update.state, update.progress)
 */
export class TranscodeService {
  readonly storage: Storage
  readonly engine: Engine
  readonly repository: Repository
  readonly queue: Queue
  readonly presets: PresetCatalog
  readonly #ownsQueue: boolean
  readonly #options: Required<
    Pick<TranscoderOptions, 'keyPrefix' | 'tmpDir' | 'maxInputBytes' | 'probe' | 'pollIntervalMs'>
  > & { defaultPresets: { audio: readonly string[]; video: readonly string[] } }
  readonly #events = new EventEmitter({ captureRejections: false })
  /** Jobs running in this process, to abort them on cancel. */
  readonly #running = new Map<string, AbortController>()
  /** The fingerprint of each unfinished job as last announced, so a no-op update is silent. */
  readonly #lastSeen = new Map<string, string>()
  /** Jobs created here whose queue message failed to send. */
  readonly #unsent = new Set<string>()
  readonly #probes: ConcurrencyLimiter
  readonly #limits: ResolvedJobLimits
  readonly #logger: Logger
  #started: Promise<void> | null = null
  #closed = false

  constructor(options: TranscoderOptions) {
    this.storage = options.storage
    this.engine = options.engine
    this.repository = options.repository
    this.#ownsQueue = !options.queue
    this.queue = options.queue ?? inProcessQueue()
    this.presets = options.presets ?? createPresetCatalog()
    this.#limits = resolveJobLimits(options.limits)
    this.#logger = options.logger ?? consoleLogger()
    const probeConcurrency = options.probeConcurrency ?? availableParallelism()
    if (!Number.isInteger(probeConcurrency) || probeConcurrency < 1) {
      throw new ConfigurationError(
        'createTranscoder: option "probeConcurrency" must be an integer ≥ 1',
      )
    }
    this.#probes = new ConcurrencyLimiter(probeConcurrency)
    const keyPrefix = options.keyPrefix ?? ''
    assertValidPrefix(keyPrefix)
    this.#options = {
      keyPrefix,
      tmpDir: options.tmpDir ?? join(tmpdir(), 'transcodekit'),
      maxInputBytes: options.maxInputBytes ?? 10 * 1024 ** 3,
      probe: options.probe ?? probeMedia,
      pollIntervalMs: options.pollIntervalMs ?? 2000,
      defaultPresets: {
        audio: options.defaultPresets?.audio ?? DEFAULT_PRESETS.audio,
        video: options.defaultPresets?.video ?? DEFAULT_PRESETS.video,
      },
    }
    for (const name of [
      ...this.#options.defaultPresets.audio,
      ...this.#options.defaultPresets.video,
    ]) {
      this.presets.resolve(name)
    }
    this.#events.setMaxListeners(0)
    // Upload spools of processes that died mid-upload: at start, then now and then.
    void watchLeftovers(this.#options.tmpDir, { logger: this.#logger })
    if (options.worker !== false) {
      const concurrency = options.worker?.concurrency ?? 1
      this.#started = this.queue.work((message, context) => this.runJob(message.jobId, context), {
        concurrency,
      })
    }
  }

  /** Resolves once the worker (if any) has started consuming. */
  async ready(): Promise<void> {
    await this.#started
  }

  /**
   * Streams an upload to a spool file while counting and hashing it, checks that its bytes
   * are audio or video (never trusting its name or claimed type), then stores it and records
   * the asset. Anything refused leaves nothing behind.
   */
  async ingest(
    body: NodeJS.ReadableStream | AsyncIterable<Uint8Array>,
    options: IngestOptions = {},
  ): Promise<Asset> {
    const limit = options.maxBytes ?? this.#options.maxInputBytes
    await mkdir(this.#options.tmpDir, { recursive: true })
    const spool = join(this.#options.tmpDir, `${processTag()}-${randomUUID()}.upload`)
    const hash = createHash('sha256')
    let size = 0
    let stored: string | null = null
    try {
      const meter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          size += chunk.length
          if (size > limit) return callback(new TooLargeError(limit))
          hash.update(chunk)
          callback(null, chunk)
        },
      })
      await pipeline(body, meter, createWriteStream(spool, { flags: 'wx' }), {
        signal: options.signal,
      })
      const rejection = await sniffFileRejection(spool)
      if (rejection) throw new UnsupportedMediaError(rejection)
      const media = await this.#probes.run(
        () =>
          this.#options.probe(spool, {
            signal: options.signal,
            // A frame the limits refuse anyway is never decoded, not even by the probe.
            maxFramePixels: this.#limits.maxFramePixels,
          }),
        options.signal,
      )
      const { contentType, extension } = describeMedia(media)
      const id = randomUUID()
      const key = originalKey(this.#options.keyPrefix, id, extension)
      stored = key
      if (this.storage.putFile) {
        await this.storage.putFile(key, spool, { contentType, signal: options.signal })
      } else {
        await this.storage.put(key, createReadStream(spool), {
          contentType,
          signal: options.signal,
        })
      }
      const asset: Asset = {
        id,
        owner: options.owner ?? DEFAULT_OWNER,
        storageKey: key,
        originalFilename: options.filename ?? null,
        contentType,
        size,
        sha256: hash.digest('hex'),
        media,
        createdAt: new Date(),
      }
      await this.repository.createAsset(asset)
      stored = null
      return asset
    } catch (error) {
      if (stored) {
        await this.storage.delete(stored).catch((cleanup: unknown) => {
          this.#logger.error(
            { key: stored, error: errorText(cleanup) },
            'transcodekit: could not remove the original of a failed ingest',
          )
        })
      }
      const full = outOfSpace(error, 'the upload')
      if (full) throw full
      if (options.signal?.aborted && !(error instanceof TranscodeKitError)) {
        throw new AbortedError('the upload was aborted', { cause: error })
      }
      throw error
    } finally {
      await rm(spool, { force: true })
    }
  }

  /** Resolves preset names against the catalog and checks that they apply to the asset. */
  resolvePresets(asset: Asset, names?: readonly string[]): Preset[] {
    const hasVideo = asset.media.streams.some((s) => s.type === 'video')
    const hasAudio = asset.media.streams.some((s) => s.type === 'audio')
    const chosen =
      names && names.length > 0
        ? names
        : hasVideo
          ? this.#options.defaultPresets.video
          : this.#options.defaultPresets.audio
    const presets = this.presets.resolveAll(chosen)
    for (const preset of presets) {
      const needs = presetNeeds(preset)
      if (needs === 'video' && !hasVideo) {
        throw new IncompatiblePresetError(`preset ${preset.id} needs a video input`)
      }
      if (needs === 'audio' && !hasAudio && !preset.video) {
        throw new IncompatiblePresetError(`preset ${preset.id} needs an audio input`)
      }
      const reason = this.engine.unsupportedReason?.(preset)
      if (reason) throw new IncompatiblePresetError(reason)
    }
    return presets
  }

  /**
   * Creates the job that turns an asset into the outputs of `presets`, and hands it to a
   * worker. With an idempotency key, the same key always gives the same job; the same key
   * with a different request is an `IdempotencyConflictError`.
   */
  async transcode(assetId: string, options: TranscodeOptions = {}): Promise<Job> {
    const asset = await this.getAsset(assetId, options)
    const presets = this.resolvePresets(asset, options.presets)
    checkJobLimits(asset.media, presets, this.#limits)
    const idempotencyKey = options.idempotencyKey ?? null
    if (idempotencyKey !== null && (idempotencyKey.length === 0 || idempotencyKey.length > 255)) {
      throw new InvalidRequestError(
        'INVALID_IDEMPOTENCY_KEY',
        'an idempotency key has 1 to 255 characters',
      )
    }
    const requestHash = createHash('sha256')
      // The content, not the asset id: two uploads of the same bytes under one key (a retried
      // request racing the first) are the same request.
      .update(JSON.stringify([asset.sha256, presets.map((p) => p.id)]))
      .digest('hex')
    const jobId = randomUUID()
    // No read-then-insert: the repository's unique key decides, so concurrent callers with
    // one key (in any number of processes) all get the one job.
    const {
      job,
      created,
      requestHash: storedHash,
    } = await this.repository.createJob({
      id: jobId,
      owner: asset.owner,
      assetId: asset.id,
      engine: this.engine.name,
      idempotencyKey,
      requestHash,
      createdAt: new Date(),
      outputs: presets.map((preset) => ({
        name: preset.id,
        presetId: preset.id,
        storageKey: outputKey(
          this.#options.keyPrefix,
          asset.id,
          jobId,
          preset.id,
          preset.extension,
        ),
        contentType: preset.contentType,
      })),
    })
    if (created) {
      this.#emit({ type: 'job.created', job })
      try {
        await this.queue.send({ jobId: job.id })
      } catch (error) {
        // A retry of this request hands it over again, without waiting for the grace.
        this.#unsent.add(job.id)
        throw error
      }
      return job
    }
    if (storedHash !== requestHash) throw new IdempotencyConflictError(idempotencyKey ?? '')
    // A duplicate (a CMS event sent twice, a retried request) of a job already handed over
    // sends nothing: a resend would cost as much as the create. Only a job whose hand-over
    // failed here, or that is still untaken after a grace (its creator may have died between
    // the row and the send, and `resume()` runs only at a start), is handed over again; the
    // queue and the worker both ignore a job that is already taken or has ended.
    if (
      job.state === 'submitted' &&
      job.attempts === 0 &&
      (this.#unsent.has(job.id) || Date.now() - job.createdAt.getTime() >= RESEND_GRACE_MS)
    ) {
      await this.queue.send({ jobId: job.id })
      this.#unsent.delete(job.id)
    }
    return job
  }

  /** One call does both: ingest an upload and create its job. */
  async ingestAndTranscode(
    body: NodeJS.ReadableStream | AsyncIterable<Uint8Array>,
    options: IngestOptions & TranscodeOptions = {},
  ): Promise<{ asset: Asset; job: Job }> {
    // Unknown presets fail before a byte is stored.
    if (options.presets && options.presets.length > 0) this.presets.resolveAll(options.presets)
    if (options.idempotencyKey) {
      const existing = await this.repository.getJobByIdempotencyKey(
        options.idempotencyKey,
        options.owner ?? DEFAULT_OWNER,
      )
      if (existing) {
        // A retried request: read the body to its end without storing it, then answer as
        // the first time, or with a conflict if this request sends other bytes or presets.
        const hash = createHash('sha256')
        for await (const chunk of body) hash.update(chunk)
        const asset = await this.getAsset(existing.assetId)
        if (hash.digest('hex') !== asset.sha256) {
          throw new IdempotencyConflictError(options.idempotencyKey)
        }
        return { asset, job: await this.transcode(asset.id, options) }
      }
    }
    const asset = await this.ingest(body, options)
    try {
      const job = await this.transcode(asset.id, options)
      if (job.assetId !== asset.id) {
        // Lost a race on the idempotency key: the other request's asset wins.
        await this.deleteAsset(asset.id)
        return { asset: await this.getAsset(job.assetId), job }
      }
      return { asset, job }
    } catch (error) {
      await this.deleteAsset(asset.id).catch((cleanup: unknown) => {
        this.#logger.error(
          { assetId: asset.id, error: errorText(cleanup) },
          'transcodekit: could not remove the asset of a failed upload',
        )
      })
      throw error
    }
  }

  async getAsset(id: string, scope: OwnerScope = {}): Promise<Asset> {
    const asset = await this.repository.getAsset(id)
    if (!asset || !inScope(asset, scope)) throw new NotFoundError('asset', id)
    return asset
  }

  listAssets(request?: ListAssetsRequest): Promise<Page<Asset>> {
    return this.repository.listAssets(request)
  }

  /** Cancels the asset's running jobs, then removes its original, its outputs and its rows. */
  async deleteAsset(id: string, scope: OwnerScope = {}): Promise<void> {
    const asset = await this.getAsset(id, scope)
    let cursor: string | null = null
    do {
      const page: Page<Job> = await this.repository.listJobs({ assetId: id, limit: 100, cursor })
      for (const job of page.items) {
        if (!isTerminal(job.state)) {
          await this.cancel(job.id).catch((cleanup: unknown) => {
            this.#logger.warn(
              { jobId: job.id, assetId: id, error: errorText(cleanup) },
              'transcodekit: could not cancel a job of an asset being deleted',
            )
          })
        }
      }
      cursor = page.nextCursor
    } while (cursor)
    await this.storage.deletePrefix(assetPrefix(this.#options.keyPrefix, asset.id))
    await this.repository.deleteAsset(id)
  }

  async getJob(id: string, scope: OwnerScope = {}): Promise<Job> {
    const job = await this.repository.getJob(id)
    if (!job || !inScope(job, scope)) throw new NotFoundError('job', id)
    return job
  }

  listJobs(request?: ListJobsRequest): Promise<Page<Job>> {
    return this.repository.listJobs(request)
  }

  /** A URL to read an output (or any stored key) from. */
  outputUrl(
    output: Pick<Output, 'storageKey' | 'name'>,
    options?: { expiresInSec?: number },
  ): Promise<string> {
    return this.storage.url(output.storageKey, { ...options })
  }

  /**
   * Cancels a job that has not ended. Canceling a canceled job returns it as it is; a job
   * that completed or failed cannot be canceled (`InvalidStateError`).
   */
  async cancel(id: string, scope: OwnerScope = {}): Promise<Job> {
    const job = await this.getJob(id, scope)
    if (job.state === 'canceled') return job
    if (isTerminal(job.state))
      throw new InvalidStateError(`job ${id} has already ended (${job.state})`)
    if (job.engineJobId && this.engine.cancel) {
      await this.engine.cancel(job.engineJobId)
    }
    const updated = await this.#update(id, {
      state: 'canceled',
      outputs: job.outputs.map((o) => ({ name: o.name, state: 'canceled' as const })),
    })
    this.#running.get(id)?.abort(new AbortedError('the job was canceled'))
    if (updated?.state !== 'canceled') {
      throw new InvalidStateError(`job ${id} ended (${updated?.state}) before it could be canceled`)
    }
    await this.storage.deletePrefix(jobPrefix(this.#options.keyPrefix, job.assetId, job.id))
    return updated
  }

  /**
   * Runs a failed or canceled job again, as a new job with the same presets. Retrying the
   * same job twice gives the same new job.
   */
  async retry(id: string, scope: OwnerScope = {}): Promise<Job> {
    const job = await this.getJob(id, scope)
    if (job.state !== 'error' && job.state !== 'canceled') {
      throw new InvalidStateError(
        `only a failed or canceled job can be retried; job ${id} is ${job.state}`,
      )
    }
    return this.transcode(job.assetId, {
      owner: job.owner,
      presets: job.outputs.map((o) => o.presetId),
      idempotencyKey: `retry:${job.id}`,
    })
  }

  /**
   * Applies an engine notification (already verified by its transport, such as SNS) to its
   * job. Returns the job, or `null` when the message is not about one of our jobs.
   */
  async handleNotification(message: unknown): Promise<Job | null> {
    const status = this.engine.parseNotification?.(message)
    if (!status) return null
    const job = await this.repository.getJobByEngineJobId(this.engine.name, status.engineJobId)
    if (!job) return null
    return this.#applyStatus(job, status)
  }

  /** Calls `listener` with every change of every job this process makes or sees. */
  subscribe(listener: (event: JobEvent) => void): () => void {
    this.#events.on('job', listener)
    return () => this.#events.off('job', listener)
  }

  /**
   * Yields a job now and whenever it changes, until it ends (the last value is terminal) or
   * `signal` aborts. Changes made by workers in other processes are seen by re-reading the
   * job every `pollIntervalMs`.
   */
  async *watch(
    id: string,
    options: OwnerScope & { signal?: AbortSignal } = {},
  ): AsyncGenerator<Job> {
    const local = new AbortController()
    const signal = options.signal ? AbortSignal.any([options.signal, local.signal]) : local.signal
    // Listening before the first read, so that no change falls between the two; everything
    // after it sits in the `try`, so that the listener goes with `local.abort()` however the
    // watch ends (an unknown job, a consumer that stops after the first value).
    const changes = on(this.#events, `job:${id}`, { signal })
    // One read of `changes` stays pending across polls: a read per turn would leave one behind
    // each time the poll won, and those would swallow the next changes. It is rejected when
    // the watch ends; that is not an error.
    const nextChange = () => {
      const read = changes.next()
      read.catch(() => {})
      return read
    }
    try {
      let last = await this.getJob(id, options)
      yield last
      let change = nextChange()
      while (!isTerminal(last.state)) {
        const tick = new AbortController()
        const woke = await Promise.race([
          change,
          delay(this.#options.pollIntervalMs, AbortSignal.any([signal, tick.signal])).then(
            () => null,
          ),
        ])
        // A change came first: stop this turn's timer, or it would read the job once more.
        tick.abort()
        let next: Job | null
        if (woke) {
          if (woke.done) return
          next = woke.value[0] as Job
          change = nextChange()
        } else {
          next = await this.repository.getJob(id)
        }
        if (!next) return
        if (
          next.updatedAt.getTime() >= last.updatedAt.getTime() &&
          fingerprint(next) !== fingerprint(last)
        ) {
          last = next
          yield last
        }
      }
    } catch (error) {
      if (signal.aborted) return
      throw error
    } finally {
      local.abort()
    }
  }

  /** Hands every job that has not ended to a worker again (after a restart). */
  async resume(): Promise<number> {
    let count = 0
    for (const state of ['submitted', 'progressing'] as const) {
      let cursor: string | null = null
      do {
        const page: Page<Job> = await this.repository.listJobs({ state, limit: 100, cursor })
        for (const job of page.items) {
          await this.queue.send({ jobId: job.id })
          count++
        }
        cursor = page.nextCursor
      } while (cursor)
    }
    return count
  }

  /**
   * The queue handler: runs one job to its end. Safe to run twice for one job: a job that
   * has ended is left alone, a remote job already submitted is not submitted again, output
   * keys are fixed when the job is created, and the terminal state is written once.
   */
  async runJob(id: string, context: Partial<QueueHandlerContext> = {}): Promise<void> {
    let job = await this.repository.getJob(id)
    if (!job || isTerminal(job.state)) return
    const controller = new AbortController()
    const signal = context.signal
      ? AbortSignal.any([context.signal, controller.signal])
      : controller.signal
    this.#running.set(id, controller)
    try {
      job = (await this.#update(id, { incrementAttempts: true })) ?? job
      if (isTerminal(job.state)) return
      const asset = await this.repository.getAsset(job.assetId)
      if (!asset) return
      let status: EngineStatus
      if (job.engineJobId && this.engine.getStatus) {
        status = await this.engine.getStatus(job.engineJobId, { signal })
      } else {
        const request = this.#engineRequest(asset, job)
        checkJobLimits(
          asset.media,
          request.outputs.map((o) => o.preset),
          this.#limits,
        )
        status = await this.engine.run(request, {
          signal,
          onStatus: (update) => {
            void this.#applyStatus(job!, update).then(
              (current) => {
                if (current?.state === 'canceled')
                  controller.abort(new AbortedError('the job was canceled'))
              },
              () => {},
            )
          },
        })
      }
      job = (await this.#applyStatus(job, status)) ?? job
      while (!isTerminal(job.state)) {
        await delay(this.#options.pollIntervalMs, signal)
        const current = await this.repository.getJob(id)
        if (!current || isTerminal(current.state)) return
        if (!current.engineJobId || !this.engine.getStatus) {
          throw new Error(
            `engine ${this.engine.name} returned a non-terminal status and cannot be polled`,
          )
        }
        job =
          (await this.#applyStatus(
            current,
            await this.engine.getStatus(current.engineJobId, { signal }),
          )) ?? current
      }
    } catch (error) {
      const current = await this.repository.getJob(id)
      if (!current || isTerminal(current.state)) return
      // Stopped by the queue (shutdown, expiry): leave the job as it is to be delivered again.
      if (context.signal?.aborted) throw error
      if (controller.signal.aborted) return
      if (error instanceof TranscodeKitError) {
        await this.#update(id, {
          state: 'error',
          errorCode: error.code,
          errorMessage: error.message,
          outputs: current.outputs.map((o) => ({ name: o.name, state: 'error' as const })),
        })
        await this.storage
          .deletePrefix(jobPrefix(this.#options.keyPrefix, current.assetId, id))
          .catch((cleanup: unknown) => {
            this.#logger.error(
              { jobId: id, assetId: current.assetId, error: errorText(cleanup) },
              'transcodekit: could not remove the outputs of a refused job',
            )
          })
        return
      }
      throw error
    } finally {
      this.#running.delete(id)
    }
  }

  #engineRequest(asset: Asset, job: Job): EngineJobRequest {
    return {
      jobId: job.id,
      input: {
        key: asset.storageKey,
        media: asset.media,
        maxFramePixels: this.#limits.maxFramePixels,
        maxDurationSec: this.#limits.maxDurationSec,
      },
      maxOutputBytes: this.#limits.maxOutputBytes,
      storage: this.storage,
      outputs: job.outputs.map((output) => ({
        name: output.name,
        key: output.storageKey,
        preset: this.presets.resolve(output.presetId),
      })),
    }
  }

  async #applyStatus(job: Job, status: EngineStatus): Promise<Job | null> {
    const patch: JobPatch = { state: status.state }
    if (
      status.engineJobId &&
      status.engineJobId !== job.engineJobId &&
      job.engine === this.engine.name
    ) {
      patch.engineJobId = status.engineJobId
    }
    if (status.progress !== undefined) patch.progress = clampProgress(status.progress)
    if (status.state === 'complete') patch.progress = 100
    if (status.state === 'error') {
      patch.errorCode = status.error?.code ?? 'ENGINE_FAILED'
      patch.errorMessage = status.error?.message ?? 'the engine failed the job'
    }
    const byKey = new Map(job.outputs.map((o) => [o.storageKey, o.name]))
    const outputs: NonNullable<JobPatch['outputs']> = []
    for (const output of status.outputs ?? []) {
      const name = byKey.get(output.key)
      if (!name) continue
      let size = output.size
      if (output.state === 'complete' && (size === undefined || size === null)) {
        size = (await this.storage.head(output.key))?.size ?? null
      }
      outputs.push({
        name,
        state: output.state,
        size,
        durationSec: output.durationSec,
        ...(output.error && { errorCode: output.error.code, errorMessage: output.error.message }),
      })
    }
    if (isTerminal(status.state)) {
      for (const output of job.outputs) {
        if (!outputs.some((o) => o.name === output.name))
          outputs.push({ name: output.name, state: status.state })
      }
    }
    if (outputs.length > 0) patch.outputs = outputs
    const updated = await this.#update(job.id, patch)
    // The job was canceled while the engine finished: what it wrote must not stay behind.
    if (updated?.state === 'canceled' && status.state === 'complete') {
      await this.storage.deletePrefix(jobPrefix(this.#options.keyPrefix, job.assetId, job.id))
    }
    return updated
  }

  async #update(id: string, patch: JobPatch): Promise<Job | null> {
    const before = this.#lastSeen.get(id)
    const job = await this.repository.updateJob(id, patch)
    if (job && fingerprint(job) !== before) {
      this.#lastSeen.set(id, fingerprint(job))
      if (isTerminal(job.state)) this.#lastSeen.delete(id)
      if (job.state === 'error' && patch.state === 'error') {
        this.#logger.warn(
          { jobId: job.id, code: job.errorCode, message: job.errorMessage },
          'transcode job failed',
        )
      }
      this.#emit({ type: 'job.updated', job })
    }
    return job
  }

  #emit(event: JobEvent): void {
    this.#events.emit('job', event)
    this.#events.emit(`job:${event.job.id}`, event.job)
  }

  /**
   * Stops the worker (running jobs are aborted and left to be delivered again) and closes
   * what the service created. What the caller passed in is not closed.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#ownsQueue) await this.queue.close()
    this.#events.removeAllListeners()
  }
}

/** Makes the `TranscodeService`. */
export function createTranscoder(options: TranscoderOptions): TranscodeService {
  return new TranscodeService(options)
}

function inScope(resource: { owner: Owner }, scope: OwnerScope): boolean {
  return scope.owner === undefined || resource.owner === scope.owner
}

function fingerprint(job: Job): string {
  return JSON.stringify([job.state, job.progress, job.outputs.map((o) => [o.state, o.size])])
}

function clampProgress(value: number): number {
  return Math.min(100, Math.max(0, Math.round(value * 10) / 10))
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
