import { join } from 'node:path'
import {
  createTranscoder,
  type Engine,
  ffmpegEngine,
  localStorage,
  type Queue,
  type Repository,
  type Storage,
  type TranscodeService,
} from '@transcodekit/core'
import { adminController } from './admin-api/controller.ts'
import { registerAdminPermissions } from './admin-api/permissions.ts'
import { isPermanentError } from './error-codes.ts'
import { replacesFile, sha256Of } from './file-versions.ts'
import { migrateStrapiTables } from './knex-migrations.ts'
import { knexQueue } from './knex-queue.ts'
import { knexRepository } from './knex-repository.ts'
import {
  CMS_OWNER,
  createLifecycleAdapter,
  type LifecycleAdapter,
  type MediaFileSnapshot,
  type OriginalReader,
  type TranscodeRecord,
  UPLOAD_FILE_MODEL,
} from './lifecycle-adapter.ts'
import { localUploadsReader, urlReader } from './original-readers.ts'
import { type ResolvedPluginOptions, resolvePluginOptions } from './plugin-options.ts'
import { RetryTasks } from './retry-tasks.ts'
import type { StrapiHost, StrapiLifecycleEvent } from './strapi-host.ts'
import { strapiCoreLogger } from './strapi-logger.ts'

/** Where the plugin records a file's transcoding: `provider_metadata.transcodekit`. */
export const RECORD_FIELD = 'transcodekit'

interface PluginState {
  options: ResolvedPluginOptions
  service: TranscodeService
  adapter: LifecycleAdapter
  readOriginal: OriginalReader
  tasks: RetryTasks
  unsubscribe: () => void
  close: () => Promise<void>
  /** Record writes per file, chained so two never interleave. */
  writes: Map<string, Promise<void>>
}

/** What the plugin exposes as `strapi.plugin('transcodekit').service('transcoder')`. */
export interface TranscodekitStrapiService {
  /** The service jobs are submitted to. */
  readonly service: TranscodeService
  readonly adapter: LifecycleAdapter
  /** Resolves once no submission, recording or deletion is pending (tests, shutdown). */
  idle(): Promise<void>
  /** Reads what is recorded on a file entry, or `null`. */
  recordOf(fileId: string | number): Promise<TranscodeRecord | null>
  /** The idempotency keys of file entries' jobs are `<keyPrefix><fileId>`. */
  readonly keyPrefix: string
  /** Records `jobId` (a retry) as the entry's job, and follows it to its end. */
  track(fileId: string, jobId: string): void
}

const states = new WeakMap<object, PluginState>()

/** Where beforeUpdate leaves the replaced file's record for afterUpdate (`event.state`). */
const PREVIOUS_RECORD = 'transcodekitPreviousRecord'

function stateOf(strapi: StrapiHost): PluginState {
  const state = states.get(strapi)
  if (!state) throw new Error('transcodekit: the plugin has not been bootstrapped')
  return state
}

/** Strapi's config hook: `default` is merged under the user's config, then validated. */
export const config = {
  default: {},
  validator(input: unknown): void {
    resolvePluginOptions(input)
  },
}

export function register(): void {}

/**
 * Builds (or takes) the service, then subscribes to the creation and deletion of media
 * entries. The hooks only hand work to background tasks: they run inside Strapi's database
 * write, which must neither wait for transcoding nor fail because of it.
 */
export async function bootstrap({ strapi }: { strapi: StrapiHost }): Promise<void> {
  const options = resolvePluginOptions(strapi.config.get('plugin::transcodekit', {}))
  const { service, close } = await obtainService(strapi, options)
  const readOriginal = options.readOriginal ?? providerReader(strapi)
  const adapter = createLifecycleAdapter({
    service,
    rules: options.rules,
    readOriginal,
    keyPrefix: options.keyPrefix,
    probe: options.probe,
  })
  const tasks = new RetryTasks({
    ...options.retry,
    concurrency: options.concurrency,
    isPermanent: isPermanentError,
    logger: strapiCoreLogger(strapi.log),
    onRetry(key, error, attempt, delayMs) {
      strapi.log.warn(
        `transcodekit: ${key} failed (attempt ${attempt}: ${describeError(error)}); retrying in ${delayMs} ms`,
      )
    },
    async onFailure(key, error, attempts) {
      strapi.log.error(
        `transcodekit: ${key} failed after ${attempts} attempt(s): ${describeError(error)}`,
      )
      const [action, fileId] = splitKey(key)
      if (action === 'delete' || !fileId) return
      const code = String((error as { code?: unknown })?.code ?? 'TRANSCODING_UNAVAILABLE')
      await writeRecord(state, strapi, fileId, {
        jobId: null,
        assetId: null,
        state: 'error',
        progress: 0,
        error: { code, message: error instanceof Error ? error.message : String(error) },
        outputs: [],
        updatedAt: new Date().toISOString(),
      })
    },
  })
  const hooks = {
    models: [UPLOAD_FILE_MODEL],
    afterCreate(event: StrapiLifecycleEvent) {
      try {
        const file = adapter.snapshot(event)
        if (!file || !adapter.ruleFor(file)) return
        submitLater(state, strapi, file)
      } catch (error) {
        strapi.log.error(`transcodekit: afterCreate could not be handled: ${describeError(error)}`)
      }
    },
    async beforeUpdate(event: StrapiLifecycleEvent) {
      // The record of the file being replaced names the asset to remove once the new one is
      // transcoded; it is handed to afterUpdate in the subscriber's event state.
      try {
        const params = event.params as { where?: unknown; data?: unknown } | undefined
        if (!replacesFile(params?.data) || !event.state) return
        if (!params?.where || typeof params.where !== 'object') return
        const row = await strapi.db.query(UPLOAD_FILE_MODEL).findOne({
          where: params.where as Record<string, unknown>,
          select: ['id', 'provider_metadata'],
        })
        event.state[PREVIOUS_RECORD] = row ? recordIn(row) : null
      } catch (error) {
        strapi.log.error(`transcodekit: beforeUpdate could not be handled: ${describeError(error)}`)
      }
    },
    afterUpdate(event: StrapiLifecycleEvent) {
      try {
        // A new name, caption or alternative text (or our own record) is not a new file.
        if (!replacesFile((event.params as { data?: unknown } | undefined)?.data)) return
        const file = adapter.snapshot(event)
        if (!file || !adapter.ruleFor(file)) return
        const previous =
          (event.state?.[PREVIOUS_RECORD] as TranscodeRecord | null | undefined) ??
          recordIn({ provider_metadata: file.providerMetadata })
        replaceLater(state, strapi, file, previous?.assetId ?? null)
      } catch (error) {
        strapi.log.error(`transcodekit: afterUpdate could not be handled: ${describeError(error)}`)
      }
    },
    afterDelete(event: StrapiLifecycleEvent) {
      try {
        const file = adapter.snapshot(event)
        if (!file) return
        removeLater(state, file)
      } catch (error) {
        strapi.log.error(`transcodekit: afterDelete could not be handled: ${describeError(error)}`)
      }
    },
  }
  const state: PluginState = {
    options,
    service,
    adapter,
    readOriginal,
    tasks,
    unsubscribe: () => {},
    close,
    writes: new Map(),
  }
  const subscription = strapi.db.lifecycles.subscribe(hooks)
  state.unsubscribe = () => {
    if (typeof subscription === 'function') subscription()
  }
  states.set(strapi, state)
  await followUnfinished(state, strapi)
  await registerAdminPermissions(strapi)
  strapi.log.info(
    `transcodekit: transcoding ${options.rules.map((r) => `${r.mime} → ${r.presets.join('+')}`).join(', ')}`,
  )
}

/** Stops the hooks and background tasks, then closes what the plugin created. */
export async function destroy({ strapi }: { strapi: StrapiHost }): Promise<void> {
  const state = states.get(strapi)
  if (!state) return
  states.delete(strapi)
  state.unsubscribe()
  await state.tasks.close()
  await Promise.allSettled(state.writes.values())
  await state.close()
}

export { routes } from './admin-api/routes.ts'
export const controllers = { admin: adminController }

export const services = {
  transcoder: ({ strapi }: { strapi: StrapiHost }): TranscodekitStrapiService => ({
    get service() {
      return stateOf(strapi).service
    },
    get adapter() {
      return stateOf(strapi).adapter
    },
    async idle() {
      const state = stateOf(strapi)
      await state.tasks.idle()
      await Promise.allSettled(state.writes.values())
    },
    get keyPrefix() {
      return stateOf(strapi).options.keyPrefix
    },
    track(fileId, jobId) {
      const state = stateOf(strapi)
      state.tasks.run(`track:${fileId}`, async () => {
        // The previous job's follower (it has ended, or is ending) makes way for the new job's.
        await state.tasks.cancel(`follow:${fileId}`)
        const job = await state.service.getJob(jobId)
        await writeRecord(state, strapi, fileId, await state.adapter.describe(job))
        follow(state, strapi, fileId, jobId)
      })
    },
    recordOf(fileId) {
      return readRecord(strapi, String(fileId))
    },
  }),
}

function submitLater(state: PluginState, strapi: StrapiHost, file: MediaFileSnapshot): void {
  state.tasks.run(
    `create:${file.id}`,
    async (signal) => {
      const outcome = await state.adapter.submit(file, { signal })
      if (outcome.status !== 'submitted') return
      await writeRecord(state, strapi, file.id, await state.adapter.describe(outcome.job))
      follow(state, strapi, file.id, outcome.job.id)
    },
    { limited: true },
  )
}

/**
 * The entry's file was replaced (Strapi keeps its `hash`, so the bytes tell): new bytes get a
 * new job under the key of their SHA-256; the previous version's asset is named in the record
 * and removed once the new job completes (`follow`). The same bytes again start nothing.
 */
function replaceLater(
  state: PluginState,
  strapi: StrapiHost,
  file: MediaFileSnapshot,
  previousAssetId: string | null,
): void {
  const key = `replace:${file.id}`
  const start = () =>
    state.tasks.run(
      key,
      async (signal) => {
        const sha256 = await sha256Of(await state.readOriginal(file, { signal }), signal)
        const previous = previousAssetId
          ? await state.service.repository.getAsset(previousAssetId)
          : null
        if (previous?.sha256 === sha256) return
        const version = sha256.slice(0, 32)
        const outcome = await state.adapter.submit(file, { signal, version })
        if (outcome.status !== 'submitted') return
        // The previous version's job is no longer what the entry shows.
        await state.tasks.cancel(`follow:${file.id}`)
        const replaces = previousAssetId !== outcome.job.assetId ? previousAssetId : null
        await writeRecord(state, strapi, file.id, {
          ...(await state.adapter.describe(outcome.job)),
          sourceSha256: sha256,
          replacesAssetId: replaces,
        })
        follow(state, strapi, file.id, outcome.job.id)
      },
      { limited: true },
    )
  // A replacement of a replacement still being submitted: the newest one wins.
  if (!start()) {
    state.tasks.cancel(key).then(start, (error: unknown) => {
      strapi.log.error(`transcodekit: ${key} could not be restarted: ${describeError(error)}`)
    })
  }
}

function follow(state: PluginState, strapi: StrapiHost, fileId: string, jobId: string): void {
  state.tasks.run(`follow:${fileId}`, async (signal) => {
    const job = await state.adapter.settled(jobId, { signal })
    if (signal.aborted) return
    const current = await readRecord(strapi, fileId)
    // Another version's job took over the entry meanwhile: this one's record is not wanted.
    if (current?.jobId && current.jobId !== job.id) return
    const record: TranscodeRecord = {
      ...(await state.adapter.describe(job)),
      sourceSha256: current?.sourceSha256 ?? null,
      replacesAssetId: current?.replacesAssetId ?? null,
    }
    if (job.state === 'complete' && record.replacesAssetId) {
      await deleteAssetIfAny(state.service, record.replacesAssetId)
      record.replacesAssetId = null
    }
    await writeRecord(state, strapi, fileId, record)
  })
}

async function deleteAssetIfAny(service: TranscodeService, assetId: string): Promise<void> {
  try {
    await service.deleteAsset(assetId)
  } catch (error) {
    // Already gone (a concurrent delivery, an earlier attempt): the outcome is the same.
    if ((error as { code?: unknown })?.code !== 'NOT_FOUND') throw error
  }
}

async function readRecord(strapi: StrapiHost, fileId: string): Promise<TranscodeRecord | null> {
  const id = /^\d+$/.test(fileId) ? Number(fileId) : fileId
  const row = await strapi.db
    .query(UPLOAD_FILE_MODEL)
    .findOne({ where: { id }, select: ['id', 'provider_metadata'] })
  return row ? recordIn(row) : null
}

/** The record on a row of the upload file model, if any. */
function recordIn(row: { provider_metadata?: unknown }): TranscodeRecord | null {
  const metadata = row.provider_metadata as Record<string, unknown> | null | undefined
  return (metadata?.[RECORD_FIELD] as TranscodeRecord | undefined) ?? null
}

function removeLater(state: PluginState, file: MediaFileSnapshot): void {
  state.tasks.run(`delete:${file.id}`, async () => {
    // A submission still retrying, or a job still followed, would act on a deleted entry.
    await state.tasks.cancel(`create:${file.id}`)
    await state.tasks.cancel(`replace:${file.id}`)
    await state.tasks.cancel(`follow:${file.id}`)
    await state.adapter.remove(file)
    // A replaced file's job is under the key of its version: its record names its asset, and
    // the asset of the version it replaced if that one is not removed yet.
    const record = recordIn({ provider_metadata: file.providerMetadata })
    for (const assetId of new Set([record?.assetId, record?.replacesAssetId])) {
      if (assetId) await deleteAssetIfAny(state.service, assetId)
    }
  })
}

/** After a restart, follows the jobs of media entries that had not ended. */
async function followUnfinished(state: PluginState, strapi: StrapiHost): Promise<void> {
  for (const jobState of ['submitted', 'progressing'] as const) {
    let cursor: string | null = null
    do {
      const page = await state.service.listJobs({
        owner: CMS_OWNER,
        state: jobState,
        limit: 100,
        cursor,
      })
      for (const job of page.items) {
        const fileId = job.idempotencyKey ? state.adapter.fileIdOf(job.idempotencyKey) : null
        if (fileId) follow(state, strapi, fileId, job.id)
      }
      cursor = page.nextCursor
    } while (cursor)
  }
}

/** Merges the record into the entry's `provider_metadata`, keeping what the provider put there. */
function writeRecord(
  state: PluginState,
  strapi: StrapiHost,
  fileId: string,
  record: TranscodeRecord,
): Promise<void> {
  const previous = state.writes.get(fileId) ?? Promise.resolve()
  const next = previous
    // The previous write's failure is its own caller's to handle; this write runs anyway.
    .catch(() => {})
    .then(async () => {
      const query = strapi.db.query(UPLOAD_FILE_MODEL)
      const id = /^\d+$/.test(fileId) ? Number(fileId) : fileId
      const row = await query.findOne({ where: { id }, select: ['id', 'provider_metadata'] })
      if (!row) return
      const metadata = (row.provider_metadata ?? {}) as Record<string, unknown>
      await query.update({
        where: { id },
        data: { provider_metadata: { ...metadata, [RECORD_FIELD]: record } },
      })
    })
  state.writes.set(fileId, next)
  void next
    .finally(() => {
      if (state.writes.get(fileId) === next) state.writes.delete(fileId)
    })
    // Only the bookkeeping: `next` itself, failure included, goes back to the caller.
    .catch(() => {})
  return next
}

async function obtainService(
  strapi: StrapiHost,
  options: ResolvedPluginOptions,
): Promise<{ service: TranscodeService; close: () => Promise<void> }> {
  const given = options.service
  if (given && typeof given !== 'function') return { service: given, close: async () => {} }
  if (typeof given === 'function') {
    const service = await given({ strapi })
    return { service, close: () => service.close() }
  }
  const t = options.transcoder
  const closers: Array<() => Promise<unknown> | unknown> = []
  try {
    const storage: Storage = t.s3
      ? await openS3Storage(t.s3, closers)
      : localStorage({
          root: t.dataDir ?? join(strapi.dirs.static.public, 'uploads', 'transcodekit'),
          baseUrl: t.publicUrl,
        })
    const engine: Engine = ffmpegEngine()
    const logger = strapiCoreLogger(strapi.log)
    let repository: Repository
    let queue: Queue | undefined
    if (t.databaseUrl) {
      // Optional peer: only an app that sets `databaseUrl` needs it installed.
      const kysely: typeof import('@transcodekit/kysely') = await import('@transcodekit/kysely')
      const { db, close } = await kysely.openDatabase({ url: t.databaseUrl, maxConnections: 5 })
      closers.push(close)
      await kysely.migrateToLatest(db)
      repository = kysely.kyselyRepository({ db })
    } else {
      // Strapi's own database (SQLite, PostgreSQL, MySQL): jobs and the work queue are durable
      // with no setup, and every Strapi process on that database shares them.
      const knex = strapi.db.connection
      await migrateStrapiTables(knex)
      repository = knexRepository({ knex })
      const durable = knexQueue({ knex, logger })
      closers.push(() => durable.close())
      queue = durable
    }
    const service = createTranscoder({
      storage,
      engine,
      repository,
      logger,
      ...(queue ? { queue } : {}),
      worker: t.worker ? { concurrency: t.concurrency } : false,
    })
    closers.unshift(() => service.close())
    // Jobs a previous run left unfinished (or whose hand-over was cut short) are handed over
    // again; the queue's claims make sure each runs once.
    if (t.worker) await service.resume()
    return { service, close: () => closeAll(closers, strapi) }
  } catch (error) {
    await closeAll(closers, strapi)
    throw error
  }
}

/** Closes each resource in turn; one that fails is logged and the others are still closed. */
async function closeAll(
  closers: Array<() => Promise<unknown> | unknown>,
  strapi: StrapiHost,
): Promise<void> {
  for (const close of closers) {
    try {
      await close()
    } catch (error) {
      strapi.log.error(`transcodekit: could not close a resource: ${describeError(error)}`)
    }
  }
}

async function openS3Storage(
  settings: NonNullable<ResolvedPluginOptions['transcoder']['s3']>,
  closers: Array<() => Promise<unknown> | unknown>,
): Promise<Storage> {
  // Optional peers: only an app that keeps its transcodes in S3 needs them installed.
  const { S3Client }: typeof import('@aws-sdk/client-s3') = await import('@aws-sdk/client-s3')
  const { s3Storage }: typeof import('@transcodekit/aws') = await import('@transcodekit/aws')
  const client = new S3Client({
    region: settings.region ?? 'us-east-1',
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    forcePathStyle: settings.forcePathStyle ?? false,
    ...(settings.accessKeyId && settings.secretAccessKey
      ? {
          credentials: {
            accessKeyId: settings.accessKeyId,
            secretAccessKey: settings.secretAccessKey,
          },
        }
      : {}),
  })
  closers.push(() => client.destroy())
  const storage = s3Storage({ client, bucket: settings.bucket, prefix: settings.prefix })
  const publicUrl = settings.publicUrl
  if (!publicUrl) return storage
  // Objects are public: record lasting URLs rather than presigned ones that expire.
  return {
    put: (key, body, opts) => storage.put(key, body, opts),
    get: (key, opts) => storage.get(key, opts),
    head: (key, opts) => storage.head(key, opts),
    delete: (key, opts) => storage.delete(key, opts),
    deletePrefix: (prefix, opts) => storage.deletePrefix(prefix, opts),
    url: async (key) => `${publicUrl}${settings.prefix}${key}`,
  }
}

/** Reads originals through the upload provider that stored them. */
function providerReader(strapi: StrapiHost): OriginalReader {
  const local = localUploadsReader({ uploadsDir: join(strapi.dirs.static.public, 'uploads') })
  const remote = urlReader({
    async resolveUrl(file) {
      const provider = strapi.plugin('upload')?.provider
      if (provider?.isPrivate && provider.getSignedUrl && (await provider.isPrivate())) {
        const signed = await provider.getSignedUrl({
          url: file.url,
          hash: file.hash,
          ext: file.ext,
          mime: file.mime,
          provider_metadata: file.providerMetadata,
        })
        return signed.url
      }
      return file.url
    },
  })
  return (file, options) =>
    file.provider === 'local' ? local(file, options) : remote(file, options)
}

function splitKey(key: string): [string, string | null] {
  const index = key.indexOf(':')
  return index < 0 ? [key, null] : [key.slice(0, index), key.slice(index + 1)]
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code
    return code ? `${code}: ${error.message}` : error.message
  }
  return String(error)
}
