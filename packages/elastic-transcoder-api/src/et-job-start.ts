import {
  InvalidKeyError,
  type Job,
  NotFoundError,
  type Owner,
  type Preset,
  type Storage,
  TranscodeKitError,
} from '@transcodekit/core'
import { CORE_KEY_PREFIX } from './core-job-key.ts'
import type { EtCustomPresets } from './et-custom-presets.ts'
import { ElasticTranscoderError } from './et-errors.ts'
import type { ResolvedEtOptions } from './plugin-options.ts'
import type { EtJobRecord } from './store/et-store.ts'

/** What starting the core job of an ET job takes. */
export interface CoreJobSpec {
  etJobId: string
  owner: Owner
  inputBucket: string
  inputKey: string
  corePresetIds: string[]
  customPresets: Preset[]
}

/**
 * The client's input cannot be transcoded: ET's job error code (3001 input does not exist,
 * 3005 bucket does not exist, 4000 bad input file) and its message. CreateJob answers it as a
 * ValidationException; a held job that meets it when its pipeline resumes ends in `Error`.
 */
export class InputRefused extends Error {
  readonly errorCode: 3001 | 3005 | 4000

  constructor(errorCode: 3001 | 3005 | 4000, message: string) {
    super(message)
    this.errorCode = errorCode
  }
}

/**
 * Starts the core job of an ET job: reads `Input.Key` from the pipeline's input bucket into
 * the service, with the idempotency key `elastic-transcoder:<ET job id>`, so that starting the
 * same ET job twice (a retry, two processes resuming one pipeline) gives the same core job.
 */
export class EtJobStarter {
  readonly #options: ResolvedEtOptions
  readonly #presets: EtCustomPresets

  constructor(options: ResolvedEtOptions, presets: EtCustomPresets) {
    this.#options = options
    this.#presets = presets
  }

  async start(spec: CoreJobSpec): Promise<Job> {
    const { service } = this.#options
    const where = `bucket=${spec.inputBucket}, key=${spec.inputKey}`
    const input = this.#inputBucket(spec)
    let object: Awaited<ReturnType<typeof input.get>>
    try {
      object = await input.get(spec.inputKey)
    } catch (error) {
      if (error instanceof NotFoundError || error instanceof InvalidKeyError) {
        throw new InputRefused(3001, `The specified object could not be found: ${where}.`)
      }
      throw error
    }
    try {
      const { job } = await service.ingestAndTranscode(object.body, {
        owner: spec.owner,
        filename: spec.inputKey.split('/').at(-1) ?? null,
        presets: spec.corePresetIds,
        customPresets: spec.customPresets,
        idempotencyKey: `${CORE_KEY_PREFIX}${spec.etJobId}`,
      })
      return job
    } catch (error) {
      object.body.destroy()
      // Input the service refuses (not media, too large, a preset that cannot apply, over a
      // limit) is the client's; the service removed what it had stored of it.
      if (error instanceof TranscodeKitError && !(error instanceof ElasticTranscoderError)) {
        throw new InputRefused(4000, `${error.message} (${where})`)
      }
      throw error
    }
  }

  /** What `start` would find first: the input bucket and object (for a job that is held). */
  async checkInput(spec: CoreJobSpec): Promise<void> {
    const found = await this.#inputBucket(spec)
      .head(spec.inputKey)
      .catch((error: unknown) => {
        if (error instanceof InvalidKeyError) return null
        throw error
      })
    if (!found) {
      throw new InputRefused(
        3001,
        `The specified object could not be found: bucket=${spec.inputBucket}, key=${spec.inputKey}.`,
      )
    }
  }

  #inputBucket(spec: CoreJobSpec): Storage {
    const input = this.#options.bucketAllowed(spec.owner, spec.inputBucket)
      ? this.#options.buckets.get(spec.inputBucket)
      : undefined
    if (!input) throw new InputRefused(3005, `The bucket ${spec.inputBucket} is not configured.`)
    return input
  }

  /** The spec of a job recorded without its core job (held by a paused pipeline). */
  async specOf(job: EtJobRecord, inputBucket: string): Promise<CoreJobSpec> {
    const { service } = this.#options
    const custom = await this.#presets.forJob(
      job.owner,
      job.outputs.map((o) => o.presetId).filter((id) => !service.presets.has(id)),
    )
    return {
      etJobId: job.id,
      owner: job.owner,
      inputBucket,
      inputKey: job.input.Key,
      corePresetIds: job.outputs.map((o) => o.corePresetId),
      customPresets: [...custom.values()].filter((preset) =>
        job.outputs.some((o) => o.corePresetId === preset.id),
      ),
    }
  }
}
