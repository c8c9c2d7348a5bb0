import type { Readable } from 'node:stream'
import {
  type Asset,
  ConfigurationError,
  InvalidRequestError,
  isTerminal,
  type Job,
  type JobState,
  type TranscodeService,
} from '@transcodekit/core'
import { type MediaRule, matchRule, resolveRules } from './media-rules.ts'

/** The model whose entries are media files in Strapi. */
export const UPLOAD_FILE_MODEL = 'plugin::upload.file'

/**
 * The owner of every asset and job made from the CMS's media entries: one fixed owner, apart
 * from whoever uses the HTTP API of the same service.
 */
export const CMS_OWNER = 'strapi'

/**
 * A lifecycle event as Strapi's database layer delivers it (`strapi.db.lifecycles`), or as
 * any other CMS can build it. `model` is the model's uid, or an object carrying it.
 */
export interface LifecycleEvent {
  action: string
  model: string | { uid: string }
  result?: unknown
}

/**
 * What the adapter keeps of a media entry: a copy, because Strapi goes on mutating the
 * event's `result` after the hook returns.
 */
export interface MediaFileSnapshot {
  id: string
  documentId: string | null
  name: string | null
  mime: string | null
  ext: string | null
  hash: string | null
  /** `/uploads/<hash><ext>` for Strapi's local provider, an absolute URL for S3. */
  url: string | null
  provider: string | null
  /** As the CMS stores it (Strapi: kilobytes). */
  size: number | null
  providerMetadata: Record<string, unknown> | null
}

export interface ReadOriginalOptions {
  signal?: AbortSignal
}

export interface SubmitOptions extends ReadOriginalOptions {
  /**
   * The entry's file was replaced by this version (a digest of its bytes): submit under the
   * key `<prefix><id>:<version>`, a new job, rather than under the entry's key.
   * @default undefined (the entry's first file)
   */
  version?: string
}

/** Opens the bytes of an uploaded original, wherever the CMS stored them. */
export type OriginalReader = (
  file: MediaFileSnapshot,
  options: ReadOriginalOptions,
) => Promise<Readable | AsyncIterable<Uint8Array>>

export interface LifecycleAdapterOptions {
  service: TranscodeService
  /** Which MIME types are transcoded to which presets; see `MediaRule`. */
  rules: readonly MediaRule[]
  /** Opens an original for ingestion. */
  readOriginal: OriginalReader
  /** The model uid whose events are handled. @default 'plugin::upload.file' */
  model?: string
  /**
   * Prefix of the idempotency keys: the key of entry 42 is `<prefix>42`. Change it only when
   * two CMS instances share one transcodekit database.
   * @default 'strapi:file:'
   */
  keyPrefix?: string
  /**
   * When ffprobe reads an original. `'deferred'`: the job is recorded (`submitted`) once the
   * original is stored, and the worker probes it before transcoding, so that a bulk import is
   * accepted at the database's pace rather than one ffprobe process per file; an original
   * that is not media fails its job (`UNSUPPORTED_MEDIA`). Strapi has already accepted the
   * file, so there is no upload to refuse at once, and the rules always name their presets.
   * `'now'`: probed before the job is made, as the HTTP upload route does.
   * @default 'deferred'
   */
  probe?: 'now' | 'deferred'
}

/** One output as recorded on a media entry. */
export interface RecordedOutput {
  preset: string
  url: string | null
  mime: string
  state: JobState
  /** Bytes, once the output is complete. */
  size: number | null
  durationSec: number | null
}

/** What is recorded on a media entry about its transcoding. */
export interface TranscodeRecord {
  jobId: string | null
  assetId: string | null
  state: JobState | 'pending'
  progress: number
  error: { code: string; message: string } | null
  outputs: RecordedOutput[]
  updatedAt: string
  /** SHA-256 of the file version the job is for. */
  sourceSha256?: string | null
  /** The asset of the file version this one replaced, removed once this job completes. */
  replacesAssetId?: string | null
}

export type LifecycleOutcome =
  | { status: 'ignored'; reason: 'model' | 'action' | 'no-id' }
  | { status: 'skipped'; reason: 'no-rule'; file: MediaFileSnapshot }
  | { status: 'submitted'; file: MediaFileSnapshot; job: Job; asset: Asset | null }
  | { status: 'deleted'; file: MediaFileSnapshot; assetId: string | null }

/**
 * Turns CMS lifecycle events into transcoding jobs, without knowing the CMS: creating an entry
 * whose MIME type matches a rule submits one job under the key `strapi:file:<id>`; delivering
 * the same event again (Strapi fires `afterCreate` twice in some paths) finds that job
 * instead of making another, because the repository's unique key on idempotency keys decides;
 * deleting the entry deletes the asset with its outputs.
 *
 * @example
 * const adapter = createLifecycleAdapter({
 *   service,
 *   rules: [{ mime: 'audio/*', presets: ['mp3-192k'] }],
 *   readOriginal: async (file) => fs.createReadStream(pathOf(file)),
 * })
 * const outcome = await adapter.handle({ action: 'afterCreate', model: 'plugin::upload.file', result: row })
 * if (outcome.status === 'submitted') for await (const job of service.watch(outcome.job.id)) { ... }
 */
export interface LifecycleAdapter {
  readonly service: TranscodeService
  readonly rules: readonly MediaRule[]
  /** A copy of the media entry of an event, or `null` when the event is not for this model. */
  snapshot(event: LifecycleEvent): MediaFileSnapshot | null
  /** The idempotency key of a media entry. */
  keyOf(file: Pick<MediaFileSnapshot, 'id'>): string
  /** The idempotency key of one version of a media entry's file (see `SubmitOptions`). */
  versionKeyOf(file: Pick<MediaFileSnapshot, 'id'>, version: string): string
  /** The media entry id an idempotency key of this adapter is for, or `null`. */
  fileIdOf(key: string): string | null
  /** The rule that applies to a media entry, if any. */
  ruleFor(file: Pick<MediaFileSnapshot, 'mime'>): MediaRule | null
  /** Handles `afterCreate` and `afterDelete` (and ignores other actions and models). */
  handle(event: LifecycleEvent, options?: ReadOriginalOptions): Promise<LifecycleOutcome>
  /** Submits the job of a media entry (or finds it); `skipped` when no rule matches. */
  submit(file: MediaFileSnapshot, options?: SubmitOptions): Promise<LifecycleOutcome>
  /** Deletes the asset of a media entry with its jobs and outputs. */
  remove(file: MediaFileSnapshot): Promise<LifecycleOutcome>
  /** The job of a media entry, or `null` when it has none. */
  jobOf(file: Pick<MediaFileSnapshot, 'id'>): Promise<Job | null>
  /** The record to store on the media entry for a job (output URLs resolved). */
  describe(job: Job): Promise<TranscodeRecord>
  /** Resolves with the job once it has ended (or when `signal` aborts, as it is then). */
  settled(jobId: string, options?: { signal?: AbortSignal }): Promise<Job>
}

export function createLifecycleAdapter(options: LifecycleAdapterOptions): LifecycleAdapter {
  const resolved = resolveOptions(options)
  const { service, rules, readOriginal, model, keyPrefix, probe } = resolved
  // Deliveries of one entry that overlap in this process share one submission; across
  // processes the repository's unique key still makes it one job.
  const inFlight = new Map<string, Promise<LifecycleOutcome>>()

  const keyOf = (file: Pick<MediaFileSnapshot, 'id'>) => `${keyPrefix}${file.id}`
  const versionKeyOf = (file: Pick<MediaFileSnapshot, 'id'>, version: string) => {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(version)) {
      throw new InvalidRequestError(
        'INVALID_IDEMPOTENCY_KEY',
        'a file version must be 1 to 64 letters, digits, - or _',
      )
    }
    return `${keyPrefix}${file.id}:${version}`
  }
  const fileIdOf = (key: string) =>
    key.startsWith(keyPrefix) ? (key.slice(keyPrefix.length).split(':')[0] ?? null) : null

  const jobOf = (file: Pick<MediaFileSnapshot, 'id'>) =>
    service.repository.getJobByIdempotencyKey(keyOf(file), CMS_OWNER)

  async function submitOnce(
    file: MediaFileSnapshot,
    idempotencyKey: string,
    opts: ReadOriginalOptions,
  ): Promise<LifecycleOutcome> {
    const rule = matchRule(rules, file.mime)
    if (!rule) return { status: 'skipped', reason: 'no-rule', file }
    const existing = await service.repository.getJobByIdempotencyKey(idempotencyKey, CMS_OWNER)
    if (existing) {
      return {
        status: 'submitted',
        file,
        job: existing,
        asset: await service.repository.getAsset(existing.assetId),
      }
    }
    const body = await readOriginal(file, opts)
    const { asset, job } = await service.ingestAndTranscode(body, {
      owner: CMS_OWNER,
      filename: file.name,
      presets: rule.presets,
      idempotencyKey,
      signal: opts.signal,
      probe,
      // Looked up just above, before the original was opened.
      lookUpKeyFirst: false,
    })
    return { status: 'submitted', file, job, asset }
  }

  const adapter: LifecycleAdapter = {
    service,
    rules,
    keyOf,
    versionKeyOf,
    fileIdOf,
    jobOf,
    ruleFor: (file) => matchRule(rules, file.mime),

    snapshot(event) {
      if (modelUid(event) !== model) return null
      return snapshotFile(event.result)
    },

    async handle(event, opts = {}) {
      if (modelUid(event) !== model) return { status: 'ignored', reason: 'model' }
      if (event.action !== 'afterCreate' && event.action !== 'afterDelete') {
        return { status: 'ignored', reason: 'action' }
      }
      const file = snapshotFile(event.result)
      if (!file) return { status: 'ignored', reason: 'no-id' }
      return event.action === 'afterCreate' ? adapter.submit(file, opts) : adapter.remove(file)
    },

    submit(file, opts = {}) {
      const key = opts.version === undefined ? keyOf(file) : versionKeyOf(file, opts.version)
      const running = inFlight.get(key)
      if (running) return running
      const submission = submitOnce(file, key, opts).finally(() => inFlight.delete(key))
      inFlight.set(key, submission)
      return submission
    },

    async remove(file) {
      // A creation still being submitted would otherwise leave its asset behind. Its failure
      // is answered to the creation's own caller; here it only has to have ended.
      await inFlight.get(keyOf(file))?.catch(() => {})
      const job = await jobOf(file)
      if (!job) return { status: 'deleted', file, assetId: null }
      await service.deleteAsset(job.assetId).catch((error: unknown) => {
        // Deleted by a concurrent delivery of the same event: the outcome is the same.
        if ((error as { code?: unknown })?.code !== 'NOT_FOUND') throw error
      })
      return { status: 'deleted', file, assetId: job.assetId }
    },

    async describe(job) {
      const outputs = await Promise.all(
        job.outputs.map(async (output) => ({
          preset: output.presetId,
          url: output.state === 'complete' ? await service.outputUrl(output) : null,
          mime: output.contentType,
          state: output.state,
          size: output.size,
          durationSec: output.durationSec,
        })),
      )
      return {
        jobId: job.id,
        assetId: job.assetId,
        state: job.state,
        progress: job.progress,
        error: job.errorCode
          ? { code: job.errorCode, message: job.errorMessage ?? job.errorCode }
          : null,
        outputs,
        updatedAt: job.updatedAt.toISOString(),
      }
    },

    async settled(jobId, opts = {}) {
      let last: Job | null = null
      for await (const job of service.watch(jobId, opts)) {
        last = job
        if (isTerminal(job.state)) break
      }
      return last ?? service.getJob(jobId)
    },
  }
  return adapter
}

function resolveOptions(options: LifecycleAdapterOptions) {
  if (!options || typeof options !== 'object') {
    throw new ConfigurationError(
      'createLifecycleAdapter: options { service, rules, readOriginal } are required',
    )
  }
  if (!options.service || typeof options.service.ingestAndTranscode !== 'function') {
    throw new ConfigurationError(
      'createLifecycleAdapter: option "service" must be a TranscodeService',
    )
  }
  if (typeof options.readOriginal !== 'function') {
    throw new ConfigurationError('createLifecycleAdapter: option "readOriginal" must be a function')
  }
  const rules = resolveRules(options.rules)
  for (const rule of rules) options.service.presets.resolveAll(rule.presets)
  const model = options.model ?? UPLOAD_FILE_MODEL
  const keyPrefix = options.keyPrefix ?? 'strapi:file:'
  if (typeof keyPrefix !== 'string' || keyPrefix.length === 0 || keyPrefix.length > 200) {
    throw new ConfigurationError(
      'createLifecycleAdapter: option "keyPrefix" must be a string of 1 to 200 characters',
    )
  }
  const probe = options.probe ?? 'deferred'
  if (probe !== 'now' && probe !== 'deferred') {
    throw new ConfigurationError(
      'createLifecycleAdapter: option "probe" must be "now" or "deferred"',
    )
  }
  return {
    service: options.service,
    readOriginal: options.readOriginal,
    rules,
    model,
    keyPrefix,
    probe,
  }
}

function modelUid(event: LifecycleEvent): string | null {
  if (!event || typeof event !== 'object') return null
  const { model } = event
  if (typeof model === 'string') return model
  if (model && typeof model === 'object' && typeof model.uid === 'string') return model.uid
  return null
}

/**
 * Copies the fields the adapter needs from a media entry row (Strapi's `event.result`), or
 * returns `null` when the row has no usable id.
 */
export function snapshotFile(row: unknown): MediaFileSnapshot | null {
  if (!row || typeof row !== 'object') return null
  const r = row as Record<string, unknown>
  const id = r.id
  if (
    !(
      (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) ||
      (typeof id === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(id))
    )
  ) {
    return null
  }
  const text = (value: unknown) => (typeof value === 'string' ? value : null)
  const size =
    typeof r.size === 'number' ? r.size : typeof r.size === 'string' ? Number(r.size) : null
  const metadata = r.provider_metadata ?? r.providerMetadata
  return {
    id: String(id),
    documentId: text(r.documentId),
    name: text(r.name),
    mime: text(r.mime),
    ext: text(r.ext),
    hash: text(r.hash),
    url: text(r.url),
    provider: text(r.provider),
    size: size !== null && Number.isFinite(size) ? size : null,
    providerMetadata:
      metadata && typeof metadata === 'object' && !Array.isArray(metadata)
        ? structuredClone(metadata as Record<string, unknown>)
        : null,
  }
}
