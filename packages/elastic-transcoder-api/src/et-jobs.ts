import {
  InvalidStateError,
  isTerminal,
  type Job,
  type Logger,
  NotFoundError,
  type Owner,
  TranscodeKitError,
} from '@transcodekit/core'
import { ElasticTranscoderError, notFound, validationError } from './et-errors.ts'
import { newEtId } from './et-ids.ts'
import type { EtNotifier } from './et-notifier.ts'
import { checkJobRequest } from './job-request.ts'
import { deliverOutput } from './output-delivery.ts'
import type { ResolvedEtOptions } from './plugin-options.ts'
import type { EtJobRecord, EtOutputRecord, EtPage, EtStatus } from './store/et-store.ts'

/** The idempotency key of the core job that runs an ET job: one ET job, one core job. */
const CORE_KEY_PREFIX = 'elastic-transcoder:'

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/**
 * The jobs of the API: CreateJob reads the input from the pipeline's input bucket into the
 * service and creates the core job; the ET status follows the core job (from its events, and
 * again whenever a job is read or listed, so a missed event only delays it); a completed core
 * job's outputs are then copied to the pipeline's output bucket, and only then is the ET job
 * `Complete`. Notifications go out on each ET status change, once (the store decides).
 */
export class EtJobs {
  readonly #options: ResolvedEtOptions
  readonly #notifier: EtNotifier
  readonly #logger: Logger
  #unsubscribe: (() => void) | null = null
  /** Updates started by events, awaited on `stop()` so none is cut by a shutdown. */
  readonly #inFlight = new Set<Promise<void>>()
  #timer: NodeJS.Timeout | null = null
  #sweeping = false

  constructor(options: ResolvedEtOptions, notifier: EtNotifier) {
    this.#options = options
    this.#notifier = notifier
    this.#logger = options.logger
  }

  /** Follows the service's job events. */
  start(): void {
    this.#unsubscribe = this.#options.service.subscribe(({ job }) => {
      const key = job.idempotencyKey
      if (!key?.startsWith(CORE_KEY_PREFIX)) return
      const etJobId = key.slice(CORE_KEY_PREFIX.length)
      const update: Promise<void> = this.#follow(etJobId, job)
        .catch((error: unknown) => {
          this.#logger.error(
            { etJobId, coreJobId: job.id, error: errorText(error) },
            'elastic-transcoder-api: could not bring a job up to date',
          )
        })
        .finally(() => this.#inFlight.delete(update))
      this.#inFlight.add(update)
    })
    if (this.#options.syncIntervalMs > 0) {
      this.#timer = setInterval(() => this.#sweep(), this.#options.syncIntervalMs)
      this.#timer.unref()
    }
  }

  /** Brings the oldest unfinished jobs up to date (one sweep at a time). */
  #sweep(): void {
    if (this.#sweeping) return
    this.#sweeping = true
    const sweep: Promise<void> = (async () => {
      for (const job of await this.#options.store.listUnfinishedJobs(100)) {
        await this.#refresh(job).catch((error: unknown) => {
          this.#logger.error(
            { etJobId: job.id, error: errorText(error) },
            'elastic-transcoder-api: could not bring a job up to date',
          )
        })
      }
    })()
      .catch((error: unknown) => {
        this.#logger.error(
          { error: errorText(error) },
          'elastic-transcoder-api: could not list the unfinished jobs',
        )
      })
      .finally(() => {
        this.#sweeping = false
        this.#inFlight.delete(sweep)
      })
    this.#inFlight.add(sweep)
  }

  /** Stops following events, once the updates already started have ended. */
  async stop(): Promise<void> {
    this.#unsubscribe?.()
    this.#unsubscribe = null
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    await Promise.all(this.#inFlight)
  }

  async create(owner: Owner, body: unknown): Promise<EtJobRecord> {
    const { service, store, buckets } = this.#options
    const request = checkJobRequest(body, service.presets)
    const pipeline = await store.getPipeline(request.pipelineId, owner)
    if (!pipeline) throw notFound('pipeline', request.pipelineId)
    await this.#checkActiveJobs(owner)
    const input = buckets.get(pipeline.inputBucket)
    if (!input) throw validationError(`The bucket ${pipeline.inputBucket} is not configured.`)
    const id = newEtId()
    let object: Awaited<ReturnType<typeof input.get>>
    try {
      object = await input.get(request.input.Key)
    } catch (error) {
      if (error instanceof NotFoundError || (error as { code?: string }).code === 'INVALID_KEY') {
        throw validationError(
          `The specified object could not be found: bucket=${pipeline.inputBucket}, key=${request.input.Key}.`,
        )
      }
      throw error
    }
    let core: Job
    const filename = request.input.Key.split('/').at(-1) ?? null
    try {
      const { job } = await service.ingestAndTranscode(object.body, {
        owner,
        filename,
        presets: request.outputs.map((o) => o.corePresetId),
        idempotencyKey: `${CORE_KEY_PREFIX}${id}`,
      })
      core = job
    } catch (error) {
      object.body.destroy()
      // Input the service refuses (not media, too large, a preset that cannot apply, over a
      // limit) is the client's: a 400 that leaves nothing behind (the service removed it).
      if (error instanceof TranscodeKitError && !(error instanceof ElasticTranscoderError)) {
        throw validationError(
          `${error.message} (bucket=${pipeline.inputBucket}, key=${request.input.Key})`,
        )
      }
      throw error
    }
    const now = new Date()
    const job: EtJobRecord = {
      id,
      owner,
      pipelineId: pipeline.id,
      coreJobId: core.id,
      input: request.input,
      outputKeyPrefix: request.outputKeyPrefix,
      outputs: request.outputs.map((o, index) => ({
        id: String(index + 1),
        key: o.key,
        presetId: o.presetId,
        corePresetId: o.corePresetId,
        segmentDuration: o.segmentDuration,
        status: 'Submitted',
        statusDetail: null,
        durationSec: null,
        durationMillis: null,
        width: null,
        height: null,
        fileSize: null,
      })),
      playlists: [],
      userMetadata: request.userMetadata,
      status: 'Submitted',
      submittedAt: now,
      startedAt: null,
      finishedAt: null,
    }
    try {
      await store.createJob(job)
    } catch (error) {
      // No ET job to show for it: the core job must not run unseen.
      await service.cancel(core.id).catch((cleanup: unknown) => {
        this.#logger.error(
          { coreJobId: core.id, error: errorText(cleanup) },
          'elastic-transcoder-api: could not cancel the core job of a job that was not recorded',
        )
      })
      throw error
    }
    return job
  }

  /**
   * ET's LimitExceededException past `maxActiveJobsPerOwner` unfinished jobs. Checked before
   * each job is made, so concurrent requests of one owner may pass it by the few in flight.
   */
  async #checkActiveJobs(owner: Owner): Promise<void> {
    const cap = this.#options.maxActiveJobsPerOwner
    if (cap === Number.POSITIVE_INFINITY) return
    let active = 0
    for (const status of ['Submitted', 'Progressing'] as const) {
      const page = await this.#options.store.listJobs({
        owner,
        status,
        ascending: false,
        after: null,
        limit: cap,
      })
      active += page.items.length
    }
    if (active >= cap) {
      throw new ElasticTranscoderError(
        'LimitExceededException',
        `Too many jobs are not finished yet (at most ${cap}): wait for some to end.`,
      )
    }
  }

  async read(owner: Owner, id: string): Promise<EtJobRecord> {
    const job = await this.#options.store.getJob(id, owner)
    if (!job) throw notFound('job', id)
    return this.#refresh(job)
  }

  async list(
    owner: Owner,
    filter: { pipelineId?: string; status?: EtStatus },
    page: { ascending: boolean; after: string | null },
  ): Promise<EtPage<EtJobRecord>> {
    const result = await this.#options.store.listJobs({
      owner,
      ...filter,
      ...page,
      limit: this.#options.pageSize,
    })
    return { ...result, items: await Promise.all(result.items.map((job) => this.#refresh(job))) }
  }

  /** ET cancels only a job that has not started: anything else is ResourceInUse. */
  async cancel(owner: Owner, id: string): Promise<void> {
    const job = await this.read(owner, id)
    const inUse = (status: string) =>
      new ElasticTranscoderError(
        'ResourceInUseException',
        `The job ${id} cannot be canceled because its status is ${status}.`,
      )
    if (job.status !== 'Submitted') throw inUse(job.status)
    if (job.coreJobId) {
      try {
        await this.#options.service.cancel(job.coreJobId)
      } catch (error) {
        if (error instanceof InvalidStateError) throw inUse('Progressing')
        throw error
      }
    }
    const canceled = await this.#options.store.updateJob(
      id,
      {
        status: 'Canceled',
        finishedAt: new Date(),
        outputs: job.outputs.map((o) => ({ ...o, status: 'Canceled' })),
      },
      { onlyIf: ['Submitted'] },
    )
    if (!canceled) {
      const now = await this.#options.store.getJobById(id)
      if (now?.status !== 'Canceled') throw inUse(now?.status ?? 'unknown')
    }
  }

  async #follow(etJobId: string, core: Job): Promise<void> {
    const job = await this.#options.store.getJobById(etJobId)
    if (job) await this.#refresh(job, core)
  }

  /** Brings an ET job up to date with its core job; returns it as it is now. */
  async #refresh(job: EtJobRecord, known?: Job): Promise<EtJobRecord> {
    if (job.status === 'Complete' || job.status === 'Error' || job.status === 'Canceled') return job
    if (!job.coreJobId) return job
    const { store } = this.#options
    let core: Job
    try {
      core = known ?? (await this.#options.service.getJob(job.coreJobId))
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error
      // Its asset was deleted through the media API: the job can never end otherwise.
      return (
        (await store.updateJob(job.id, {
          status: 'Error',
          finishedAt: new Date(),
          outputs: job.outputs.map((o) => ({
            ...o,
            status: 'Error',
            statusDetail: '9999 The job was removed before it ended.',
          })),
        })) ?? job
      )
    }
    if (core.state === 'submitted') return job
    let current = job
    if (current.status === 'Submitted' && core.state !== 'canceled') {
      const started = await store.updateJob(
        job.id,
        {
          status: 'Progressing',
          startedAt: new Date(),
          outputs: job.outputs.map((o) => ({ ...o, status: 'Progressing' })),
        },
        { onlyIf: ['Submitted'] },
      )
      if (started) {
        current = started
        await this.#notifier.notify(started, 'PROGRESSING')
      } else {
        current = (await store.getJobById(job.id)) ?? current
      }
    }
    if (!isTerminal(core.state)) return current
    if (core.state === 'canceled') {
      return (
        (await store.updateJob(job.id, {
          status: 'Canceled',
          finishedAt: new Date(),
          outputs: current.outputs.map((o) => ({ ...o, status: 'Canceled' })),
        })) ?? current
      )
    }
    return this.#finish(current, core)
  }

  /** Delivers the outputs of an ended core job (once: the store's claim) and ends the ET job. */
  async #finish(job: EtJobRecord, core: Job): Promise<EtJobRecord> {
    const { store, buckets } = this.#options
    if (!(await store.claimDelivery(job.id))) return job
    let outputs: EtOutputRecord[]
    try {
      const pipeline = await store.getPipeline(job.pipelineId, job.owner)
      const storage = pipeline ? buckets.get(pipeline.outputBucket) : undefined
      if (!pipeline || !storage) throw new Error('the pipeline or its output bucket is gone')
      outputs = []
      for (const output of job.outputs) {
        outputs.push(
          core.state === 'complete'
            ? await deliverOutput(this.#options.service, core, output, {
                bucket: pipeline.outputBucket,
                storage,
                prefix: job.outputKeyPrefix,
              })
            : {
                ...output,
                status: 'Error',
                statusDetail: `4000 ${core.errorMessage ?? 'the job failed'}`,
              },
        )
      }
    } catch (error) {
      this.#logger.error(
        { etJobId: job.id, coreJobId: core.id, error: errorText(error) },
        'elastic-transcoder-api: could not deliver the outputs of a job',
      )
      outputs = job.outputs.map((o) => ({
        ...o,
        status: 'Error',
        statusDetail: `9999 The outputs could not be written to the output bucket: ${errorText(error)}`,
      }))
    }
    const status: EtStatus = outputs.some((o) => o.status === 'Error') ? 'Error' : 'Complete'
    const ended = await store.updateJob(job.id, { status, outputs, finishedAt: new Date() })
    if (!ended) return (await store.getJobById(job.id)) ?? job
    await this.#notifier.notify(ended, status === 'Error' ? 'ERROR' : 'COMPLETED')
    return ended
  }
}
