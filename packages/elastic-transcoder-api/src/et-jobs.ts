import {
  InvalidKeyError,
  InvalidStateError,
  type Job,
  type Logger,
  NotFoundError,
  type Owner,
} from '@transcodekit/core'
import { errorText } from './core-job-key.ts'
import type { EtCustomPresets } from './et-custom-presets.ts'
import { ElasticTranscoderError, notFound, validationError } from './et-errors.ts'
import { newEtId } from './et-ids.ts'
import { type CoreJobSpec, type EtJobStarter, InputRefused } from './et-job-start.ts'
import type { EtJobSync } from './et-job-sync.ts'
import { type CheckedJobRequest, checkJobRequest, requestedPresetIds } from './job-request.ts'
import type { ResolvedEtOptions } from './plugin-options.ts'
import type { EtJobRecord, EtPage, EtPipelineRecord, EtStatus } from './store/et-store.ts'

/**
 * The job operations of the API: CreateJob reads the input from the pipeline's input bucket
 * into the service and creates the core job; reads and listings answer each job brought up to
 * date by `EtJobSync`; CancelJob cancels a job that has not started.
 */
export class EtJobs {
  readonly #options: ResolvedEtOptions
  readonly #sync: EtJobSync
  readonly #presets: EtCustomPresets
  readonly #starter: EtJobStarter
  readonly #logger: Logger
  /** CreateJob requests of each owner in flight here: they count before their job exists. */
  readonly #making = new Map<Owner, number>()

  constructor(
    options: ResolvedEtOptions,
    sync: EtJobSync,
    presets: EtCustomPresets,
    starter: EtJobStarter,
  ) {
    this.#options = options
    this.#sync = sync
    this.#presets = presets
    this.#starter = starter
    this.#logger = options.logger
  }

  async create(owner: Owner, body: unknown): Promise<EtJobRecord> {
    const { service, store } = this.#options
    // The caller's own custom presets among those asked for; another owner's are not found.
    const wanted = requestedPresetIds(body).filter((id) => !service.presets.has(id))
    const custom = await this.#presets.forJob(owner, wanted)
    const request = checkJobRequest(body, service.presets, custom)
    const pipeline = await store.getPipeline(request.pipelineId, owner)
    if (!pipeline) throw notFound('pipeline', request.pipelineId)
    const release = await this.#reserveRoom(owner)
    try {
      return await this.#make(owner, pipeline, request)
    } finally {
      release()
    }
  }

  async #make(
    owner: Owner,
    pipeline: EtPipelineRecord,
    request: CheckedJobRequest,
  ): Promise<EtJobRecord> {
    await this.#checkOutputKeys(pipeline, request)
    const id = newEtId()
    const spec: CoreJobSpec = {
      etJobId: id,
      owner,
      inputBucket: pipeline.inputBucket,
      inputKey: request.input.Key,
      corePresetIds: request.outputs.map((o) => o.corePresetId),
      customPresets: request.customPresets,
    }
    let core: Job | null
    try {
      // A paused pipeline holds the job: recorded Submitted without its core job, started by
      // EtJobSync once the pipeline is Active again.
      const held = pipeline.status === 'Paused'
      if (held) await this.#starter.checkInput(spec)
      core = held ? null : await this.#starter.start(spec)
    } catch (error) {
      if (error instanceof InputRefused) throw validationError(error.message)
      throw error
    }
    const job = newJobRecord(id, owner, pipeline, request, core)
    try {
      await this.#options.store.createJob(job)
    } catch (error) {
      // No ET job to show for it: the core job must not run unseen, nor its copy stay.
      if (core) await this.#sync.dropCoreCopy(id, core)
      throw error
    }
    return job
  }

  /**
   * Refuses now, not after the transcoding, an output key the output bucket's storage would
   * refuse (a folder bucket reserves some names and bounds each file name).
   */
  async #checkOutputKeys(pipeline: EtPipelineRecord, request: CheckedJobRequest): Promise<void> {
    const storage = this.#options.buckets.get(pipeline.outputBucket)
    if (!storage) return
    await Promise.all(
      request.outputs.map(async ({ key }) => {
        const full = request.outputKeyPrefix + key
        try {
          await storage.head(full)
        } catch (error) {
          if (error instanceof InvalidKeyError) {
            throw validationError(
              `The output key is not valid in this bucket: ${JSON.stringify(full)}.`,
            )
          }
          throw error
        }
      }),
    )
  }

  /**
   * ET's LimitExceededException past `maxActiveJobsPerOwner` unfinished jobs. The requests of
   * the owner this process is still making jobs for count too, so that a storm of concurrent
   * CreateJob cannot all pass the check before any of their jobs exists (processes sharing a
   * store may still pass it by the few each has in flight). Call the returned function once
   * the job is made or refused.
   */
  async #reserveRoom(owner: Owner): Promise<() => void> {
    const cap = this.#options.maxActiveJobsPerOwner
    if (cap === Number.POSITIVE_INFINITY) return () => {}
    const inFlight = this.#making.get(owner) ?? 0
    this.#making.set(owner, inFlight + 1)
    let held = true
    const release = () => {
      if (!held) return
      held = false
      const left = (this.#making.get(owner) ?? 1) - 1
      if (left > 0) this.#making.set(owner, left)
      else this.#making.delete(owner)
    }
    try {
      await this.#checkActiveJobs(owner, cap, inFlight)
    } catch (error) {
      release()
      throw error
    }
    return release
  }

  async #checkActiveJobs(owner: Owner, cap: number, inFlight: number): Promise<void> {
    let active = inFlight
    for (const status of ['Submitted', 'Progressing'] as const) {
      if (active >= cap) break
      const page = await this.#options.store.listJobs({
        owner,
        status,
        ascending: false,
        after: null,
        limit: cap - active,
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

  /** A pipeline is Active again: the jobs it held start (in the background). */
  resumePipeline(owner: Owner, pipelineId: string): void {
    this.#sync.resumePipeline(owner, pipelineId)
  }

  async read(owner: Owner, id: string): Promise<EtJobRecord> {
    const job = await this.#options.store.getJob(id, owner)
    if (!job) throw notFound('job', id)
    return this.#sync.refresh(job)
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
    return {
      ...result,
      items: await Promise.all(result.items.map((job) => this.#sync.refresh(job))),
    }
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
    let core: Job | null = null
    if (job.coreJobId) {
      try {
        core = await this.#options.service.cancel(job.coreJobId)
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
      // Canceled meanwhile, by this request's own core cancel (the service's event) or another.
      const now = await this.#options.store.getJobById(id)
      if (now?.status !== 'Canceled') throw inUse(now?.status ?? 'unknown')
    } else if (canceled.coreJobId && canceled.coreJobId !== job.coreJobId) {
      // A held job its resumed pipeline started meanwhile has a core job of its own: it must
      // not run unseen.
      core = await this.#options.service.getJob(canceled.coreJobId).catch((error: unknown) => {
        if (!(error instanceof NotFoundError)) {
          this.#logger.error(
            { etJobId: id, coreJobId: canceled.coreJobId, error: errorText(error) },
            'elastic-transcoder-api: could not read the core job of a job canceled while it started',
          )
        }
        return null
      })
    }
    // The server keeps no copy of a canceled job, already when CancelJob answers.
    if (core) await this.#sync.dropCoreCopy(id, core)
  }
}

/** The ET job as CreateJob records it: Submitted, with its core job unless it is held. */
function newJobRecord(
  id: string,
  owner: Owner,
  pipeline: EtPipelineRecord,
  request: CheckedJobRequest,
  core: Job | null,
): EtJobRecord {
  return {
    id,
    owner,
    pipelineId: pipeline.id,
    coreJobId: core?.id ?? null,
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
    submittedAt: new Date(),
    startedAt: null,
    finishedAt: null,
  }
}
