import {
  type Asset,
  type AssetWriteOptions,
  InvalidRequestError,
  InvalidStateError,
  isTerminal,
  type Job,
  type JobPatch,
  type JobState,
  type JobWriteOptions,
  type ListAssetsRequest,
  type ListJobsRequest,
  type NewJob,
  NotFoundError,
  type Outbox,
  type Output,
  type Owner,
  type Page,
  type Preset,
  type ProbedMedia,
  pageLimit,
  type Repository,
  TERMINAL_STATES,
  type WebhookDelivery,
} from '@transcodekit/core'
import { type ExpressionBuilder, type Kysely, sql } from 'kysely'
import { jsonArrayFrom } from 'kysely/helpers/postgres'
import { compileOnce } from './compiled-query.ts'
import type { AssetRow, JobRow, TranscodekitDatabase } from './database-tables.ts'
import { resolveSchema } from './kysely-migrations.ts'
import { insertDeliveries, KyselyWebhookStore } from './kysely-webhook-store.ts'
import { newestFirstPage } from './newest-first-page.ts'
import { SendBatcher } from './send-batcher.ts'

export interface KyselyRepositoryOptions {
  /** A Kysely instance on PostgreSQL or PGlite. The app owns it: the repository never closes it. */
  db: Kysely<any>
  /** The schema `migrateToLatest` created the tables in. @default 'transcodekit' */
  schema?: string
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

interface OutputJson {
  name: string
  preset_id: string
  requested_preset_id: string | null
  preset?: Preset | null
  storage_key: string
  content_type: string
  state: JobState
  size: number | string | null
  duration_sec: number | null
  error_code: string | null
  error_message: string | null
}

type JobWithOutputs = JobRow & { outputs: OutputJson[] }

type Db = Kysely<TranscodekitDatabase>

/**
 * The `Repository` on PostgreSQL (through `pg`) or PGlite. The rules of the contract are
 * enforced by the database, so they hold across any number of processes: the idempotency key
 * is a unique constraint, and a job update is one transaction that locks the row and refuses
 * to touch a terminal job.
 */
export class KyselyRepository implements Repository {
  readonly #db: Db
  readonly #schema: string
  /** The reads that every status poll and every job update makes, compiled once. */
  readonly #compiled: ReturnType<typeof compileReads>
  readonly #webhooks: KyselyWebhookStore
  readonly #assetInserts = new SendBatcher<Asset, undefined>(
    (assets) => this.#insertAssets(assets),
    MAX_BATCH,
  )
  readonly #jobInserts = new SendBatcher<NewJob, CreatedJob>(
    (jobs) => this.#insertJobs(jobs),
    MAX_BATCH,
  )
  readonly #keyLookups = new SendBatcher<KeyLookup, JobWithOutputs | null>(
    (lookups) => this.#jobsByKeys(lookups),
    MAX_BATCH,
  )

  constructor(options: KyselyRepositoryOptions) {
    if (!options?.db) throw new TypeError('kyselyRepository needs option "db" (a Kysely instance)')
    this.#schema = resolveSchema(options.schema)
    this.#db = (options.db as Db).withSchema(this.#schema)
    this.#compiled = compileReads(this.#db)
    this.#webhooks = new KyselyWebhookStore({ db: options.db, schema: this.#schema })
  }

  /** Webhook deliveries in the same database and schema (migration 0004). */
  webhookStore(): KyselyWebhookStore {
    return this.#webhooks
  }

  /** The schema the tables live in. */
  get schema(): string {
    return this.#schema
  }

  async createAsset(asset: Asset, options: AssetWriteOptions = {}): Promise<void> {
    assertId(asset.id, 'asset')
    // With an outbox the row and its deliveries share a transaction of their own; without,
    // the rows of a burst share one statement.
    const { outbox } = options
    if (!outbox) return this.#assetInserts.add(asset)
    try {
      await this.#withOutbox(
        outbox,
        (db) => insertAssetRows(db, [asset]),
        () => asset,
      )
    } catch (error) {
      throw assetError(asset, error)
    }
  }

  /**
   * Assets created in one turn of the event loop (a CMS burst's) go in one statement. A row
   * the database refuses fails the whole statement, so then each is inserted alone, for its
   * own answer.
   */
  async #insertAssets(assets: Asset[]): Promise<Array<undefined | Error>> {
    try {
      await insertAssetRows(this.#db, assets)
      return assets.map(() => undefined)
    } catch (error) {
      if (assets.length > 1) {
        return Promise.all(assets.map(async (asset) => (await this.#insertAssets([asset]))[0]))
      }
      return [assetError(assets[0]!, error)]
    }
  }

  async getAsset(id: string): Promise<Asset | null> {
    if (!UUID.test(id)) return null
    const [row] = (await this.#compiled.assetById.run(this.#db, id)).rows
    return row ? toAsset(row) : null
  }

  async setAssetMedia(id: string, probed: ProbedMedia): Promise<Asset | null> {
    if (!UUID.test(id)) return null
    // Only while still NULL: a job delivered again keeps the first probe's answer.
    const row = await this.#db
      .updateTable('assets')
      .set({ media: JSON.stringify(probed.media), content_type: probed.contentType })
      .where('id', '=', id)
      .where('media', 'is', null)
      .returningAll()
      .executeTakeFirst()
    return row ? toAsset(row) : this.getAsset(id)
  }

  async listAssets(request: ListAssetsRequest = {}): Promise<Page<Asset>> {
    const limit = pageLimit(request.limit)
    let query = this.#db.selectFrom('assets').selectAll()
    if (request.owner !== undefined) query = query.where('owner', '=', request.owner)
    return newestFirstPage(query, {
      columns: ['created_at', 'id'],
      cursor: request.cursor,
      limit,
      validId: (id) => UUID.test(id),
      toItem: toAsset,
    })
  }

  async deleteAsset(id: string, options: AssetWriteOptions = {}): Promise<boolean> {
    if (!UUID.test(id)) return false
    // Jobs and outputs go with it: ON DELETE CASCADE.
    const deleted = await this.#withOutbox(
      options.outbox,
      (db) => db.deleteFrom('assets').where('id', '=', id).returningAll().executeTakeFirst(),
      (row) => (row ? toAsset(row) : null),
    )
    return deleted !== undefined
  }

  /**
   * Runs `write`, then records the outbox's deliveries for what it wrote (`subjectOf` its
   * result; `null` when it wrote nothing), on one transaction: both commit, or neither.
   * Without an outbox, `write` runs on the pool as it is.
   */
  async #withOutbox<Result, Subject>(
    outbox: Outbox<Subject> | undefined,
    write: (db: Db) => Promise<Result>,
    subjectOf: (result: Result) => Subject | null,
  ): Promise<Result> {
    if (!outbox) return write(this.#db)
    const { result, recorded } = await this.#db.transaction().execute(async (trx) => {
      const result = await write(trx)
      return { result, recorded: await recordOutbox(trx, outbox, subjectOf(result)) }
    })
    outbox.recorded(recorded)
    return result
  }

  async createJob(job: NewJob, options: JobWriteOptions = {}): Promise<CreatedJob> {
    assertId(job.id, 'job')
    if (!UUID.test(job.assetId)) throw new NotFoundError('asset', job.assetId)
    const { outbox } = options
    if (!outbox) return this.#jobInserts.add(job)
    try {
      return await this.#withOutbox(
        outbox,
        async (db) => this.#resolveJob(job, await insertJobRows(db, [job]), db),
        // A job found by its key has its deliveries: its creator recorded them.
        (created) => (created.created ? created.job : null),
      )
    } catch (error) {
      throw jobError(job, error)
    }
  }

  /**
   * Jobs created in one turn of the event loop (a CMS burst's) go in one statement. A row
   * the database refuses fails the whole statement, so then each is created alone, for its
   * own answer. Only the statement is retried so: what it committed stays, and a job whose
   * key another took is then looked up once.
   */
  async #insertJobs(jobs: NewJob[]): Promise<Array<CreatedJob | Error>> {
    let inserted: Map<string, JobRow>
    try {
      inserted = await insertJobRows(this.#db, jobs)
    } catch (error) {
      if (jobs.length > 1) {
        return Promise.all(jobs.map(async (job) => (await this.#insertJobs([job]))[0]!))
      }
      return [jobError(jobs[0]!, error)]
    }
    return Promise.all(
      jobs.map((job) =>
        this.#resolveJob(job, inserted, this.#db).catch((error: unknown) => jobError(job, error)),
      ),
    )
  }

  /** The job as created, or, its key taken by another, the job that won (read on `db`). */
  async #resolveJob(job: NewJob, inserted: Map<string, JobRow>, db: Db): Promise<CreatedJob> {
    const row = inserted.get(job.id)
    if (row) return created(row, job)
    // The key was taken: a new statement sees the job that won, committed with its outputs.
    const existing =
      job.idempotencyKey === null ? null : await this.#jobByKey(db, job.owner, job.idempotencyKey)
    if (!existing) throw new Error(`job ${job.id} was neither created nor found by its key`)
    return { job: toJob(existing), created: false, requestHash: existing.request_hash }
  }

  async getJob(id: string): Promise<Job | null> {
    if (!UUID.test(id)) return null
    const [row] = (await this.#compiled.jobById.run(this.#db, id)).rows
    return row ? toJob(row) : null
  }

  async getJobByIdempotencyKey(key: string, owner: Owner): Promise<Job | null> {
    const row = await this.#keyLookups.add({ owner, key })
    return row ? toJob(row) : null
  }

  /**
   * The job under a key, read on `db`: inside a transaction on its own connection (a lookup
   * waiting for another pooled connection could wait for ever on a full pool), else batched.
   */
  async #jobByKey(db: Db, owner: Owner, key: string): Promise<JobWithOutputs | null> {
    if (db === this.#db) return this.#keyLookups.add({ owner, key })
    const [row] = (await this.#compiled.jobByKey.run(db, owner, key)).rows
    return row ?? null
  }

  /**
   * The jobs of many keys in one statement: a CMS burst looks up a key per event, and a
   * round trip each cost as much as the rest of the event. A lone lookup runs as the
   * compiled statement.
   */
  async #jobsByKeys(lookups: KeyLookup[]): Promise<Array<JobWithOutputs | null>> {
    if (lookups.length === 1) {
      const [{ owner, key }] = lookups as [KeyLookup]
      const [row] = (await this.#compiled.jobByKey.run(this.#db, owner, key)).rows
      return [row ?? null]
    }
    const owners = lookups.map((lookup) => lookup.owner)
    const keys = lookups.map((lookup) => lookup.key)
    const rows = await selectJobs(this.#db)
      .where(
        sql<boolean>`(jobs.owner, jobs.idempotency_key) in (select * from unnest(${owners}::text[], ${keys}::text[]))`,
      )
      .execute()
    const found = new Map(rows.map((row) => [keyScope(row.owner, row.idempotency_key), row]))
    return lookups.map(({ owner, key }) => found.get(keyScope(owner, key)) ?? null)
  }

  async getJobByEngineJobId(engine: string, engineJobId: string): Promise<Job | null> {
    const row = await selectJobs(this.#db)
      .where('jobs.engine', '=', engine)
      .where('jobs.engine_job_id', '=', engineJobId)
      .orderBy('jobs.created_at', 'desc')
      .limit(1)
      .executeTakeFirst()
    return row ? toJob(row) : null
  }

  async listJobs(request: ListJobsRequest = {}): Promise<Page<Job>> {
    const limit = pageLimit(request.limit)
    let query = selectJobs(this.#db)
    if (request.owner !== undefined) query = query.where('jobs.owner', '=', request.owner)
    if (request.assetId !== undefined) {
      if (!UUID.test(request.assetId)) return { items: [], nextCursor: null }
      query = query.where('jobs.asset_id', '=', request.assetId)
    }
    if (request.state !== undefined) query = query.where('jobs.state', '=', request.state)
    return newestFirstPage(query, {
      columns: ['jobs.created_at', 'jobs.id'],
      cursor: request.cursor,
      limit,
      validId: (id) => UUID.test(id),
      toItem: toJob,
    })
  }

  async updateJob(id: string, patch: JobPatch, options: JobWriteOptions = {}): Promise<Job | null> {
    if (!UUID.test(id)) return null
    const { job, recorded } = await this.#db.transaction().execute(async (trx) => {
      const set: Record<string, unknown> = {
        // Never earlier than the last change, whatever order concurrent updates commit in.
        updated_at: sql`greatest(updated_at, statement_timestamp())`,
      }
      // `submitted` is where every job starts: asking for it again never moves a job back.
      if (patch.state !== undefined && patch.state !== 'submitted') set.state = patch.state
      if (patch.state !== undefined && isTerminal(patch.state))
        set.finished_at = sql`greatest(updated_at, statement_timestamp())`
      if (patch.progress !== undefined) {
        set.progress = sql`greatest(progress, ${clampProgress(patch.progress)}::double precision)`
      }
      if (patch.engineJobId !== undefined) set.engine_job_id = patch.engineJobId
      if (patch.errorCode !== undefined) set.error_code = patch.errorCode
      if (patch.errorMessage !== undefined) set.error_message = patch.errorMessage
      if (patch.incrementAttempts) set.attempts = sql`attempts + 1`
      // One statement decides: it takes the row lock, and under READ COMMITTED its condition is
      // checked again on the latest version of the row if another update got there first.
      const updated = await trx
        .updateTable('jobs')
        .set(set)
        .where('id', '=', id)
        .where('state', 'not in', [...TERMINAL_STATES])
        .returning('id')
        .executeTakeFirst()
      if (updated) {
        for (const output of patch.outputs ?? []) {
          const outputSet: Record<string, unknown> = {}
          // An output's terminal state sticks; its size and duration may still be filled in.
          if (output.state !== undefined && output.state !== 'submitted') {
            outputSet.state = sql`case when state in ('complete', 'error', 'canceled') then state else ${output.state} end`
          }
          if (output.size !== undefined) outputSet.size = output.size
          if (output.durationSec !== undefined) outputSet.duration_sec = output.durationSec
          if (output.errorCode !== undefined) outputSet.error_code = output.errorCode
          if (output.errorMessage !== undefined) outputSet.error_message = output.errorMessage
          if (Object.keys(outputSet).length === 0) continue
          await trx
            .updateTable('outputs')
            .set(outputSet)
            .where('job_id', '=', id)
            .where('name', '=', output.name)
            .execute()
        }
      }
      const [row] = (await this.#compiled.jobById.run(trx, id)).rows
      const job = row ? toJob(row) : null
      // The outbox's deliveries join the change's transaction: both commit, or neither.
      return { job, recorded: await recordOutbox(trx, options.outbox, job) }
    })
    options.outbox?.recorded(recorded)
    return job
  }
}

/** Makes the `Repository` on a Kysely instance the app owns. Run `migrateToLatest` first. */
export function kyselyRepository(options: KyselyRepositoryOptions): KyselyRepository {
  return new KyselyRepository(options)
}

interface CreatedJob {
  job: Job
  created: boolean
  requestHash: string
}

/** What `createJob` answers for a job its statement inserted. */
function created(row: JobRow, job: NewJob): CreatedJob {
  const withOutputs: JobWithOutputs = {
    ...row,
    outputs: job.outputs.map((output) => ({
      name: output.name,
      preset_id: output.presetId,
      requested_preset_id: output.requestedPresetId ?? null,
      preset: output.preset ?? null,
      storage_key: output.storageKey,
      content_type: output.contentType,
      state: 'submitted',
      size: null,
      duration_sec: null,
      error_code: null,
      error_message: null,
    })),
  }
  return { job: toJob(withOutputs), created: true, requestHash: job.requestHash }
}

interface KeyLookup {
  owner: Owner
  key: string
}

// The most idempotency keys one statement looks up, or assets or jobs it inserts.
const MAX_BATCH = 500

function keyScope(owner: string, key: string | null): string {
  return `${owner}\0${key}`
}

// What the compiled reads are built with, in place of the values each run passes.
const ID = '\0transcodekit: the id'
const OWNER = '\0transcodekit: the owner'
const KEY = '\0transcodekit: the key'

/**
 * The reads compiled once per repository (its schema is in their SQL): a job or an asset by
 * id, a job by its key. Building and compiling a query with Kysely on every call cost about
 * a sixth of a status read (`GET /jobs/:id`), and most of the client's CPU for the key lookup
 * every CMS event makes.
 */
function compileReads(db: Db) {
  return {
    jobById: compileOnce(selectJobs(db).where('jobs.id', '=', ID), [ID] as [id: string]),
    jobByKey: compileOnce(
      selectJobs(db).where('jobs.owner', '=', OWNER).where('jobs.idempotency_key', '=', KEY),
      [OWNER, KEY] as [owner: string, key: string],
    ),
    assetById: compileOnce(db.selectFrom('assets').selectAll().where('id', '=', ID), [ID] as [
      id: string,
    ]),
  }
}

function selectJobs(db: Db) {
  return db
    .selectFrom('jobs')
    .selectAll('jobs')
    .select((eb: ExpressionBuilder<TranscodekitDatabase, 'jobs'>) =>
      jsonArrayFrom(
        eb
          .selectFrom('outputs')
          .select([
            'outputs.name',
            'outputs.preset_id',
            'outputs.requested_preset_id',
            'outputs.preset',
            'outputs.storage_key',
            'outputs.content_type',
            'outputs.state',
            'outputs.size',
            'outputs.duration_sec',
            'outputs.error_code',
            'outputs.error_message',
          ])
          .whereRef('outputs.job_id', '=', 'jobs.id')
          .orderBy('outputs.position'),
      ).as('outputs'),
    )
}

/**
 * Inserts the jobs and their outputs in one statement, so each becomes visible whole; returns
 * the rows it inserted by id (a job whose key was taken is not among them).
 */
async function insertJobRows(db: Db, jobs: NewJob[]): Promise<Map<string, JobRow>> {
  const outputs = JSON.stringify(
    jobs.flatMap((job) =>
      job.outputs.map((output, position) => ({
        job_id: job.id,
        name: output.name,
        position,
        preset_id: output.presetId,
        requested_preset_id: output.requestedPresetId ?? null,
        preset: output.preset ?? null,
        storage_key: output.storageKey,
        content_type: output.contentType,
      })),
    ),
  )
  // One statement writes the jobs and their outputs, so each becomes visible whole. A
  // concurrent insert of the same key waits on the unique index until the other statement
  // commits, then does nothing (and inserts no outputs either); so does a second job of
  // one key in the same statement.
  const inserted = await db
    .with('inserted', (db) =>
      db
        .insertInto('jobs')
        .values(
          jobs.map((job) => ({
            id: job.id,
            owner: job.owner,
            asset_id: job.assetId,
            engine: job.engine,
            engine_job_id: null,
            state: 'submitted' as const,
            progress: 0,
            error_code: null,
            error_message: null,
            idempotency_key: job.idempotencyKey,
            request_hash: job.requestHash,
            attempts: 0,
            created_at: job.createdAt,
            updated_at: job.createdAt,
            finished_at: null,
          })),
        )
        .onConflict((oc) => oc.columns(['owner', 'idempotency_key']).doNothing())
        .returningAll(),
    )
    .with('inserted_outputs', (db) =>
      db
        .insertInto('outputs')
        .columns([
          'job_id',
          'name',
          'position',
          'preset_id',
          'requested_preset_id',
          'preset',
          'storage_key',
          'content_type',
          'state',
        ])
        .expression((eb) =>
          eb
            .selectFrom(['inserted', sql`jsonb_array_elements(${outputs}::jsonb)`.as('o')])
            .where(sql<boolean>`o->>'job_id' = inserted.id::text`)
            .select([
              'inserted.id',
              sql<string>`o->>'name'`.as('name'),
              sql<number>`(o->>'position')::int`.as('position'),
              sql<string>`o->>'preset_id'`.as('preset_id'),
              sql<string | null>`o->>'requested_preset_id'`.as('requested_preset_id'),
              sql<string | null>`nullif(o->'preset', 'null'::jsonb)`.as('preset'),
              sql<string>`o->>'storage_key'`.as('storage_key'),
              sql<string>`o->>'content_type'`.as('content_type'),
              sql<JobState>`'submitted'`.as('state'),
            ]),
        ),
    )
    .selectFrom('inserted')
    .selectAll()
    .execute()
  return new Map(inserted.map((row) => [row.id, row as JobRow]))
}

/** What the caller is told of a refused asset insert. */
function assetError(asset: Asset, error: unknown): Error {
  if (sqlState(error) === UNIQUE_VIOLATION) {
    return new InvalidStateError(`asset ${asset.id} already exists`)
  }
  return error instanceof Error ? error : new Error(String(error))
}

/**
 * What the caller is told of a refused job insert. The key's conflict is handled by ON
 * CONFLICT: what is left is the job's id or the asset (missing, or another owner's: the
 * foreign key is on (asset_id, owner)).
 */
function jobError(job: NewJob, error: unknown): Error {
  if (sqlState(error) === UNIQUE_VIOLATION)
    return new InvalidStateError(`job ${job.id} already exists`)
  if (sqlState(error) === FOREIGN_KEY_VIOLATION) return new NotFoundError('asset', job.assetId)
  return error instanceof Error ? error : new Error(String(error))
}

/** Records, in `trx`, the outbox's deliveries for what a change wrote (`null`: nothing). */
function recordOutbox<Subject>(
  trx: Db,
  outbox: Outbox<Subject> | undefined,
  subject: Subject | null,
): Promise<WebhookDelivery[]> {
  return insertDeliveries(trx, outbox && subject !== null ? outbox.deliveriesFor(subject) : [])
}

function insertAssetRows(db: Db, assets: Asset[]) {
  return db.insertInto('assets').values(assets.map(assetRow)).execute()
}

/** The row of a new asset; `media` is null until an unprobed original is probed. */
function assetRow(asset: Asset) {
  return {
    id: asset.id,
    owner: asset.owner,
    storage_key: asset.storageKey,
    original_filename: asset.originalFilename,
    content_type: asset.contentType,
    size: asset.size,
    sha256: asset.sha256,
    media: asset.media && JSON.stringify(asset.media),
    created_at: asset.createdAt,
  }
}

function toAsset(row: AssetRow): Asset {
  return {
    id: row.id,
    owner: row.owner,
    storageKey: row.storage_key,
    originalFilename: row.original_filename,
    contentType: row.content_type,
    size: Number(row.size),
    sha256: row.sha256,
    media: row.media,
    createdAt: row.created_at,
  }
}

function toJob(row: JobWithOutputs): Job {
  return {
    id: row.id,
    owner: row.owner,
    assetId: row.asset_id,
    engine: row.engine,
    engineJobId: row.engine_job_id,
    state: row.state,
    progress: Number(row.progress),
    errorCode: row.error_code,
    errorMessage: row.error_message,
    idempotencyKey: row.idempotency_key,
    attempts: row.attempts,
    outputs: row.outputs.map(
      (output): Output => ({
        jobId: row.id,
        name: output.name,
        presetId: output.preset_id,
        ...(output.requested_preset_id ? { requestedPresetId: output.requested_preset_id } : {}),
        ...(output.preset ? { preset: output.preset } : {}),
        storageKey: output.storage_key,
        contentType: output.content_type,
        state: output.state,
        size: output.size === null ? null : Number(output.size),
        durationSec: output.duration_sec,
        errorCode: output.error_code,
        errorMessage: output.error_message,
      }),
    ),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    finishedAt: row.finished_at,
  }
}

const UNIQUE_VIOLATION = '23505'
const FOREIGN_KEY_VIOLATION = '23503'

/** The SQLSTATE of a database error, from `pg` or PGlite. */
function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

function assertId(id: string, what: string): void {
  if (typeof id !== 'string' || !UUID.test(id)) {
    throw new InvalidRequestError(
      'INVALID_ID',
      `${what} id must be a UUID, got ${JSON.stringify(id)}`,
    )
  }
}

function clampProgress(value: number): number {
  if (!Number.isFinite(value)) return 0
  return Math.min(100, Math.max(0, value))
}
