import {
  AbortedError,
  IdempotencyConflictError,
  IncompatiblePresetError,
  InvalidRequestError,
  InvalidStateError,
  NotFoundError,
} from '../errors.ts'
import { inProcessJobEvents } from '../events/in-process-job-events.ts'
import { assetPrefix, jobPrefix } from '../keys.ts'
import { watchLeftovers } from '../leftovers/leftover-sweeper.ts'
import {
  type Asset,
  DEFAULT_OWNER,
  isTerminal,
  type Job,
  type Output,
  type Page,
} from '../model.ts'
import type { Engine } from '../ports/engine.ts'
import type { JobEventChannel } from '../ports/job-events.ts'
import type { Logger } from '../ports/logger.ts'
import type { Queue, QueueHandlerContext } from '../ports/queue.ts'
import type { ListAssetsRequest, ListJobsRequest, Repository } from '../ports/repository.ts'
import type { Storage } from '../ports/storage.ts'
import { JobPresets } from '../presets/job-presets.ts'
import type { PresetCatalog } from '../presets/preset-catalog.ts'
import type { Preset } from '../presets/preset-schema.ts'
import { inProcessQueue } from '../queue/in-process-queue.ts'
import { FileHasher } from '../spool/file-hasher.ts'
import { type ServiceWebhooks, serviceWebhooks } from '../webhooks/service-webhooks.ts'
import type { WebhookDispatcher } from '../webhooks/webhook-dispatcher.ts'
import { ConcurrencyLimiter } from './concurrency-limiter.ts'
import { JobEventRelay } from './job-event-relay.ts'
import { type JobEvent, JobEventHub } from './job-events.ts'
import { checkJobLimits } from './job-limits.ts'
import { JobRunner } from './job-runner.ts'
import { JobSubmitter } from './job-submission.ts'
import { watchJob } from './job-watch.ts'
import { JobWriter } from './job-writer.ts'
import { checkPresetsFit } from './media-probe.ts'
import { inScope } from './service-support.ts'
import {
  type IngestAndTranscodeOptions,
  type IngestOptions,
  type OwnerScope,
  resolveTranscoderOptions,
  type ServiceSettings,
  type TranscodeOptions,
  type TranscoderOptions,
} from './transcoder-options.ts'
import { ingestUpload, sha256Of, type UploadBody } from './upload-ingest.ts'

export type { JobEvent } from './job-events.ts'
export type {
  IngestAndTranscodeOptions,
  IngestOptions,
  OwnerScope,
  TranscodeOptions,
  TranscoderOptions,
} from './transcoder-options.ts'

import { errorText } from '../logging/error-text.ts'

/**
 * What everything else calls: the HTTP plugin, the CMS adapter, the workers. The work itself
 * is done by its parts: `ingestUpload` (upload → checked, stored asset), `JobSubmitter`
 * (idempotent job creation and hand-over), `JobRunner` (a job on the engine), `JobWriter` and
 * `JobEventHub` (changes written and announced), `watchJob` (one job's changes as they come).
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
  /** The webhook deliveries (list, read, redeliver), when the `webhooks` option is given. */
  readonly webhooks: WebhookDispatcher | null
  readonly #webhooks: ServiceWebhooks | null
  /** Resolves to the error the webhooks' start met, if any. */
  readonly #webhooksStarted: Promise<unknown>
  readonly #ownsQueue: boolean
  readonly #settings: ServiceSettings
  readonly #logger: Logger
  readonly #probes: ConcurrencyLimiter
  readonly #hasher = new FileHasher()
  readonly #events = new JobEventHub()
  readonly #jobEvents: JobEventChannel
  readonly #ownsJobEvents: boolean
  readonly #relay: JobEventRelay
  readonly #writer: JobWriter
  readonly #submitter: JobSubmitter
  readonly #runner: JobRunner
  #started: Promise<void> | null = null
  #closed = false

  constructor(options: TranscoderOptions) {
    this.#settings = resolveTranscoderOptions(options)
    this.#logger = this.#settings.logger
    this.storage = options.storage
    this.engine = options.engine
    this.repository = options.repository
    this.presets = this.#settings.presets
    this.#ownsQueue = !options.queue
    this.queue = options.queue ?? inProcessQueue()
    this.#probes = new ConcurrencyLimiter(this.#settings.probeConcurrency)
    this.#ownsJobEvents = !options.jobEvents
    this.#jobEvents = options.jobEvents ?? inProcessJobEvents()
    this.#relay = new JobEventRelay({
      channel: this.#jobEvents,
      repository: this.repository,
      logger: this.#logger,
      wanted: (jobId) => this.#events.wants(jobId),
      changed: (job) => this.#events.received(job),
    })
    this.#events.connect((job) => this.#relay.publish(job))
    this.#webhooks = options.webhooks
      ? serviceWebhooks(options.webhooks, {
          repository: this.repository,
          queue: this.queue,
          logger: this.#logger,
        })
      : null
    this.webhooks = this.#webhooks?.dispatcher ?? null
    this.#writer = new JobWriter(this.repository, this.#events, this.#logger, this.#webhooks)
    this.#submitter = new JobSubmitter({
      queue: this.queue,
      writer: this.#writer,
      engineName: this.engine.name,
      keyPrefix: this.#settings.keyPrefix,
    })
    this.#runner = new JobRunner({
      repository: this.repository,
      storage: this.storage,
      engine: this.engine,
      writer: this.#writer,
      settings: this.#settings,
      probes: this.#probes,
    })
    // Upload spools of processes that died mid-upload: at start, then now and then.
    void watchLeftovers(this.#settings.tmpDir, { logger: this.#logger })
    this.#webhooksStarted = (this.webhooks?.start() ?? Promise.resolve()).then(
      () => null,
      (error: unknown) => {
        this.#logger.error(
          { error: errorText(error) },
          'transcodekit: the webhook deliveries could not start',
        )
        return error
      },
    )
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
    const error = await this.#webhooksStarted
    if (error) throw error
  }

  /**
   * Streams an upload to a spool file while counting it and hashing it (a large one on
   * another thread), checks that its bytes are audio or video (never trusting its name or
   * claimed type), then stores it and records the asset. Anything refused leaves nothing
   * behind. With `probe: 'deferred'`, ffprobe reads it later, in the worker of its first job.
   */
  async ingest(body: UploadBody, options: IngestOptions = {}): Promise<Asset> {
    const outbox = this.#assetOutbox('asset.created')
    const asset = await ingestUpload(body, options, {
      storage: this.storage,
      repository: this.repository,
      settings: this.#settings,
      probes: this.#probes,
      hasher: this.#hasher,
      outbox,
    })
    if (outbox) await this.#webhooks?.assetWritten(outbox)
    else await this.#webhooks?.assetCreated(asset)
    return asset
  }

  /**
   * Resolves preset names against the catalog and checks that they apply to the asset. An
   * asset not probed yet (`media: null`) has no defaults (they depend on its streams): it
   * needs `names`, and whether they fit its streams is checked by the worker once it probes.
   */
  resolvePresets(
    asset: Asset,
    names?: readonly string[],
    available: JobPresets = new JobPresets(this.presets),
  ): Preset[] {
    const named = names && names.length > 0
    if (!asset.media && !named) {
      throw new InvalidRequestError(
        'INVALID_REQUEST',
        `asset ${asset.id} has not been probed yet: name the presets of its job`,
      )
    }
    const { defaultPresets } = this.#settings
    const hasVideo = asset.media?.streams.some((s) => s.type === 'video') ?? false
    const chosen = named ? names : hasVideo ? defaultPresets.video : defaultPresets.audio
    const presets = available.resolveAll(chosen)
    if (asset.media) checkPresetsFit(asset.media, presets)
    for (const preset of presets) {
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
    return this.#transcodeAsset(await this.getAsset(assetId, options), options)
  }

  /** `transcode` of an asset already read (and in the caller's scope). */
  #transcodeAsset(asset: Asset, options: TranscodeOptions): Promise<Job> {
    const available = new JobPresets(this.presets, options.customPresets)
    const presets = this.resolvePresets(asset, options.presets, available)
    // Not probed yet: the worker checks the limits once it has.
    if (asset.media) checkJobLimits(asset.media, presets, this.#settings.limits)
    // The names the client used, kept beside the canonical ids (the first name of each preset).
    const requested = new Map<string, string>()
    for (const name of options.presets ?? []) {
      const { id } = available.resolve(name)
      if (id !== name && !requested.has(id)) requested.set(id, name)
    }
    return this.#submitter.submit(
      asset,
      presets,
      options.idempotencyKey ?? null,
      requested,
      available.customIds(),
    )
  }

  /** One call does both: ingest an upload and create its job. */
  async ingestAndTranscode(
    body: UploadBody,
    options: IngestAndTranscodeOptions = {},
  ): Promise<{ asset: Asset; job: Job }> {
    // Unknown presets, or none for an upload probed later, fail before a byte is stored.
    if (options.probe === 'deferred' && !options.presets?.length) {
      throw new InvalidRequestError(
        'INVALID_REQUEST',
        'an upload probed later must name the presets of its job (the defaults depend on its streams)',
      )
    }
    if (options.presets && options.presets.length > 0) {
      new JobPresets(this.presets, options.customPresets).resolveAll(options.presets)
    }
    if (options.idempotencyKey && options.lookUpKeyFirst !== false) {
      const existing = await this.repository.getJobByIdempotencyKey(
        options.idempotencyKey,
        options.owner ?? DEFAULT_OWNER,
      )
      if (existing) {
        // A retried request: read the body to its end without storing it, then answer as
        // the first time, or with a conflict if this request sends other bytes or presets.
        const sha256 = await sha256Of(body)
        const asset = await this.getAsset(existing.assetId)
        if (sha256 !== asset.sha256) throw new IdempotencyConflictError(options.idempotencyKey)
        return { asset, job: await this.#transcodeAsset(asset, options) }
      }
    }
    const asset = await this.ingest(body, options)
    try {
      const job = await this.#transcodeAsset(asset, options)
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
    await this.storage.deletePrefix(assetPrefix(this.#settings.keyPrefix, asset.id))
    const outbox = this.#assetOutbox('asset.deleted')
    if (!(await this.repository.deleteAsset(id, { outbox }))) return
    if (outbox) await this.#webhooks?.assetWritten(outbox)
    else await this.#webhooks?.assetDeleted(asset)
  }

  /** An outbox for an asset write, when the repository records the deliveries with it. */
  #assetOutbox(type: 'asset.created' | 'asset.deleted') {
    return this.#webhooks?.recordsWithJobs ? this.#webhooks.assetOutbox(type) : undefined
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
    const updated = await this.#writer.update(id, {
      state: 'canceled',
      outputs: job.outputs.map((o) => ({ name: o.name, state: 'canceled' as const })),
    })
    this.#runner.abort(id, new AbortedError('the job was canceled'))
    if (updated?.state !== 'canceled') {
      throw new InvalidStateError(`job ${id} ended (${updated?.state}) before it could be canceled`)
    }
    await this.storage.deletePrefix(jobPrefix(this.#settings.keyPrefix, job.assetId, job.id))
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
      presets: job.outputs.map((o) => o.requestedPresetId ?? o.presetId),
      customPresets: job.outputs.flatMap((o) => (o.preset ? [o.preset] : [])),
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
    return this.#runner.applyStatus(job, status)
  }

  /**
   * Calls `listener` with every change of every job this process makes, and of those other
   * processes make when a `jobEvents` channel carries them (read back from the repository:
   * a burst of changes may arrive as its latest state).
   */
  subscribe(
    listener: (event: JobEvent) => void,
    options: {
      /** `false`: only this process's changes (nothing is read for the others'). @default true */
      remote?: boolean
    } = {},
  ): () => void {
    return this.#events.subscribe(listener, options)
  }

  /**
   * Yields a job now and whenever it changes, until it ends (the last value is terminal) or
   * `signal` aborts. Changes made by workers in other processes arrive through `jobEvents`;
   * the job is also re-read every `watchIntervalMs`, for what a lost notice missed.
   */
  watch(id: string, options: OwnerScope & { signal?: AbortSignal } = {}): AsyncGenerator<Job> {
    return watchJob(
      id,
      {
        events: this.#events,
        first: () => this.getJob(id, options),
        read: (jobId) => this.repository.getJob(jobId),
        pollIntervalMs: this.#settings.watchIntervalMs,
      },
      options.signal,
    )
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
  runJob(id: string, context: Partial<QueueHandlerContext> = {}): Promise<void> {
    return this.#runner.run(id, context)
  }

  /**
   * Stops the worker (running jobs are aborted and left to be delivered again) and closes
   * what the service created. What the caller passed in is not closed.
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.webhooks?.close()
    if (this.#ownsQueue) await this.queue.close()
    this.#relay.close()
    if (this.#ownsJobEvents) await this.#jobEvents.close()
    this.#events.close()
    await this.#hasher.close()
  }
}

/** Makes the `TranscodeService`. */
export function createTranscoder(options: TranscoderOptions): TranscodeService {
  return new TranscodeService(options)
}
