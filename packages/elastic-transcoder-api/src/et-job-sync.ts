import { isTerminal, type Job, type Logger, NotFoundError, type Owner } from '@transcodekit/core'
import { CORE_KEY_PREFIX, errorText } from './core-job-key.ts'
import { type EtJobStarter, InputRefused } from './et-job-start.ts'
import type { EtNotifier } from './et-notifier.ts'
import { deliverOutput } from './output-delivery.ts'
import type { ResolvedEtOptions } from './plugin-options.ts'
import {
  ET_TERMINAL,
  type EtJobRecord,
  type EtOutputRecord,
  type EtStatus,
} from './store/et-store.ts'

/** Jobs read per page of a sweep. */
const SWEEP_PAGE = 100

/**
 * Keeps each ET job's status in step with its core job: from the service's events, on every
 * read or listing, and every `syncIntervalMs` for jobs other processes run. A completed core
 * job's outputs are copied to the pipeline's output bucket (by the one process that claims
 * it), and only then is the ET job `Complete`. Notifications go out on each ET status change,
 * once (the store's conditional updates decide). A job held by a paused pipeline (recorded
 * without its core job) is started here once its pipeline is Active: when it resumes, and by
 * any later sweep, so that a process that stops meanwhile loses none.
 */
export class EtJobSync {
  readonly #options: ResolvedEtOptions
  readonly #notifier: EtNotifier
  readonly #starter: EtJobStarter
  readonly #logger: Logger
  /** Held jobs this process is starting: an event of their new core job waits for it. */
  readonly #starting = new Set<string>()
  #unsubscribe: (() => void) | null = null
  /** Updates started by events or sweeps, awaited on `stop()` so none is cut by a shutdown. */
  readonly #inFlight = new Set<Promise<void>>()
  #timer: NodeJS.Timeout | null = null
  #sweeping = false
  #stopped = false

  constructor(options: ResolvedEtOptions, notifier: EtNotifier, starter: EtJobStarter) {
    this.#options = options
    this.#notifier = notifier
    this.#starter = starter
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

  /**
   * Brings every unfinished job up to date, a page at a time, oldest first (one sweep at a
   * time): not only the oldest page, which a backlog of waiting jobs would fill for good.
   */
  #sweep(): void {
    if (this.#sweeping) return
    this.#sweeping = true
    const sweep: Promise<void> = (async () => {
      let after: string | undefined
      for (;;) {
        const page = await this.#options.store.listUnfinishedJobs(SWEEP_PAGE, after)
        for (const job of page) {
          await this.#bringUp(job).catch((error: unknown) => {
            this.#logger.error(
              { etJobId: job.id, error: errorText(error) },
              'elastic-transcoder-api: could not bring a job up to date',
            )
          })
        }
        if (page.length < SWEEP_PAGE || this.#timer === null) break
        after = page.at(-1)?.id
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

  /**
   * Starts, in the background, the jobs a pipeline held while it was paused, oldest first. What
   * this misses (a process that stops meanwhile) the next sweep of any process starts.
   */
  resumePipeline(owner: Owner, pipelineId: string): void {
    const resume: Promise<void> = (async () => {
      let after: string | null = null
      do {
        const page = await this.#options.store.listJobs({
          owner,
          pipelineId,
          status: 'Submitted',
          ascending: true,
          after,
          limit: SWEEP_PAGE,
        })
        for (const job of page.items) {
          if (job.coreJobId) continue
          await this.#bringUp(job).catch((error: unknown) => {
            this.#logger.error(
              { etJobId: job.id, error: errorText(error) },
              'elastic-transcoder-api: could not start a job of a resumed pipeline',
            )
          })
        }
        after = page.next
      } while (after !== null && !this.#stopped)
    })()
      .catch((error: unknown) => {
        this.#logger.error(
          { pipelineId, error: errorText(error) },
          'elastic-transcoder-api: could not list the jobs of a resumed pipeline',
        )
      })
      .finally(() => this.#inFlight.delete(resume))
    this.#inFlight.add(resume)
  }

  /** Stops following events, once the updates already started have ended. */
  async stop(): Promise<void> {
    this.#stopped = true
    this.#unsubscribe?.()
    this.#unsubscribe = null
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = null
    await Promise.all(this.#inFlight)
  }

  async #follow(etJobId: string, core: Job): Promise<void> {
    const job = await this.#options.store.getJobById(etJobId)
    if (job) await this.refresh(job, core)
  }

  /** Starts a held job if its pipeline is Active, and brings the job up to date. */
  async #bringUp(job: EtJobRecord): Promise<void> {
    const current = job.coreJobId ? job : await this.#startHeld(job)
    if (current.coreJobId) await this.refresh(current)
  }

  /** Brings an ET job up to date with its core job; returns it as it is now. */
  async refresh(job: EtJobRecord, known?: Job): Promise<EtJobRecord> {
    if (job.status === 'Complete' || job.status === 'Error' || job.status === 'Canceled') return job
    // A held job is started by a resume or a sweep, never by a client's read: no read waits
    // for an input to be copied.
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
      const canceled = await store.updateJob(job.id, {
        status: 'Canceled',
        finishedAt: new Date(),
        outputs: current.outputs.map((o) => ({ ...o, status: 'Canceled' })),
      })
      await this.dropCoreCopy(job.id, core)
      return canceled ?? current
    }
    return this.#finish(current, core)
  }

  /**
   * Starts a held job whose pipeline is Active again (not one being started here already), and
   * records its core job, unless the job was canceled meanwhile: then its core job is canceled
   * too. An input that cannot be transcoded any more ends the job in `Error`, as ET does.
   */
  async #startHeld(job: EtJobRecord): Promise<EtJobRecord> {
    const { store } = this.#options
    if (this.#starting.has(job.id)) return job
    const pipeline = await store.getPipeline(job.pipelineId, job.owner)
    if (pipeline?.status !== 'Active') return job
    this.#starting.add(job.id)
    try {
      let core: Job
      try {
        core = await this.#starter.start(await this.#starter.specOf(job, pipeline.inputBucket))
      } catch (error) {
        if (error instanceof InputRefused) return await this.#fail(job, error)
        throw error
      }
      const recorded = await store.updateJob(
        job.id,
        { coreJobId: core.id },
        { onlyIf: ['Submitted'] },
      )
      if (recorded) return recorded
      const now = await store.getJobById(job.id)
      // Canceled while it started: its core job must not run unseen, nor its copy stay.
      if (now?.coreJobId !== core.id) await this.dropCoreCopy(job.id, core)
      return now ?? job
    } finally {
      this.#starting.delete(job.id)
    }
  }

  async #fail(job: EtJobRecord, refused: InputRefused): Promise<EtJobRecord> {
    const failed = await this.#options.store.updateJob(
      job.id,
      {
        status: 'Error',
        finishedAt: new Date(),
        outputs: job.outputs.map((o) => ({
          ...o,
          status: 'Error',
          statusDetail: `${refused.errorCode} ${refused.message}`,
        })),
      },
      { onlyIf: ['Submitted'] },
    )
    if (!failed) return (await this.#options.store.getJobById(job.id)) ?? job
    await this.#notifier.notify(failed, 'ERROR')
    return failed
  }

  /**
   * Delivers the outputs of an ended core job (one process at a time: the store's claim, a
   * lease) and ends the ET job. Each output is recorded once copied, so a process that takes
   * over from one that died copies only the outputs still left.
   */
  async #finish(claimed: EtJobRecord, core: Job): Promise<EtJobRecord> {
    const { store, buckets } = this.#options
    if (!(await store.claimDelivery(claimed.id, this.#options.deliveryLeaseMs))) return claimed
    // As the holder before, if any, left it: the outputs it copied are recorded Complete.
    const job = (await store.getJobById(claimed.id)) ?? claimed
    if (ET_TERMINAL.includes(job.status)) {
      // The holder before ended it, and may have died before dropping the copy.
      await this.dropCoreCopy(job.id, core)
      return job
    }
    let outputs: EtOutputRecord[]
    try {
      const pipeline = await store.getPipeline(job.pipelineId, job.owner)
      // Re-checked as the input bucket is at CreateJob: the keys may have changed since.
      const storage =
        pipeline && this.#options.bucketAllowed(job.owner, pipeline.outputBucket)
          ? buckets.get(pipeline.outputBucket)
          : undefined
      if (!pipeline || !storage) {
        throw new Error(
          'the pipeline or its output bucket is gone, or the owner may no longer use it',
        )
      }
      outputs = []
      for (const [index, output] of job.outputs.entries()) {
        if (output.status === 'Complete') {
          outputs.push(output)
          continue
        }
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
        await store.updateJob(job.id, { outputs: [...outputs, ...job.outputs.slice(index + 1)] })
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
    await this.dropCoreCopy(job.id, core)
    if (!ended) return (await store.getJobById(job.id)) ?? job
    await this.#notifier.notify(ended, status === 'Error' ? 'ERROR' : 'COMPLETED')
    return ended
  }

  /**
   * Deletes the core asset of an ET job that ended, or of a core job no ET job runs (its
   * original and outputs in the server's own storage; a core job still running is canceled
   * with it): the outputs the caller gets are in its output bucket, and the server keeps no
   * copy of its media. Once the ET job is recorded as ended, so that a process taking over
   * sees it ended rather than a core job gone; again by any process that finds it ended (an
   * asset already deleted is fine). A failure is logged: the job's answer stands.
   */
  async dropCoreCopy(etJobId: string, core: Pick<Job, 'id' | 'assetId'>): Promise<void> {
    try {
      await this.#options.service.deleteAsset(core.assetId)
    } catch (error) {
      if (error instanceof NotFoundError) return
      this.#logger.error(
        { etJobId, coreJobId: core.id, assetId: core.assetId, error: errorText(error) },
        'elastic-transcoder-api: could not delete the server-side copy of a job',
      )
    }
  }
}
