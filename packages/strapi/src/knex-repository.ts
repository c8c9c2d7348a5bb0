import {
  type Asset,
  decodeCursor,
  encodeCursor,
  InvalidStateError,
  isTerminal,
  type Job,
  type JobPatch,
  type JobState,
  type ListAssetsRequest,
  type ListJobsRequest,
  type NewJob,
  NotFoundError,
  type Owner,
  type Page,
  type ProbedMedia,
  pageLimit,
  type Repository,
  TERMINAL_STATES,
} from '@transcodekit/core'
import type { Knex } from 'knex'
import { isUniqueViolation } from './knex-errors.ts'
import { TABLES } from './knex-migrations.ts'

export interface KnexRepositoryOptions {
  /**
   * The Knex instance of Strapi's database (`strapi.db.connection`): SQLite, PostgreSQL or
   * MySQL/MariaDB. The app owns it: the repository never closes it. Run
   * `migrateStrapiTables` first.
   */
  knex: Knex
}

/**
 * The `media` of an asset not probed yet: the column holds JSON text, and JSON's `null` is
 * what it reads back as. No migration (and no column rebuild on SQLite) was needed for it.
 */
const NOT_PROBED = JSON.stringify(null)

interface AssetRow {
  id: string
  owner: string
  storage_key: string
  original_filename: string | null
  content_type: string
  size: number | string
  sha256: string
  /** JSON text: a `MediaInfo`, or `NOT_PROBED`. */
  media: string
  created_at: number | string
}

interface JobRow {
  id: string
  owner: string
  asset_id: string
  engine: string
  engine_job_id: string | null
  state: JobState
  progress: number | string
  error_code: string | null
  error_message: string | null
  idempotency_key: string | null
  request_hash: string
  attempts: number | string
  created_at: number | string
  updated_at: number | string
  finished_at: number | string | null
}

interface OutputRow {
  job_id: string
  name: string
  position: number
  preset_id: string
  requested_preset_id: string | null
  storage_key: string
  content_type: string
  state: JobState
  size: number | string | null
  duration_sec: number | string | null
  error_code: string | null
  error_message: string | null
}

type Db = Knex | Knex.Transaction

const TERMINAL = [...TERMINAL_STATES]

/**
 * The `Repository` on Strapi's own database, through its Knex instance. The rules of the
 * contract are enforced by the database on every dialect: the idempotency key is a unique
 * index on (owner, key), and a job update is one conditional `UPDATE` (`state NOT IN` the
 * terminal states, progress only raised) inside a transaction with its outputs.
 */
export class KnexRepository implements Repository {
  readonly #knex: Knex

  constructor(options: KnexRepositoryOptions) {
    if (!options?.knex) throw new TypeError('knexRepository needs option "knex" (a Knex instance)')
    this.#knex = options.knex
  }

  async createAsset(asset: Asset): Promise<void> {
    try {
      await this.#knex(TABLES.assets).insert({
        id: asset.id,
        owner: asset.owner,
        storage_key: asset.storageKey,
        original_filename: asset.originalFilename,
        content_type: asset.contentType,
        size: asset.size,
        sha256: asset.sha256,
        media: JSON.stringify(asset.media),
        created_at: asset.createdAt.getTime(),
      })
    } catch (error) {
      if (isUniqueViolation(error)) throw new InvalidStateError(`asset ${asset.id} already exists`)
      throw error
    }
  }

  async getAsset(id: string): Promise<Asset | null> {
    const row = await this.#knex<AssetRow>(TABLES.assets).where({ id }).first()
    return row ? toAsset(row) : null
  }

  async setAssetMedia(id: string, probed: ProbedMedia): Promise<Asset | null> {
    // Only while not probed: a job delivered again keeps the first probe's answer.
    await this.#knex(TABLES.assets)
      .where({ id, media: NOT_PROBED })
      .update({ media: JSON.stringify(probed.media), content_type: probed.contentType })
    return this.getAsset(id)
  }

  async listAssets(request: ListAssetsRequest = {}): Promise<Page<Asset>> {
    const limit = pageLimit(request.limit)
    const query = this.#knex<AssetRow>(TABLES.assets)
    if (request.owner !== undefined) query.where('owner', request.owner)
    if (request.cursor) after(query, 'created_at', 'id', decodeCursor(request.cursor))
    const rows = await query
      .orderBy([
        { column: 'created_at', order: 'desc' },
        { column: 'id', order: 'desc' },
      ])
      .limit(limit + 1)
    return page(rows.map(toAsset), limit)
  }

  async deleteAsset(id: string): Promise<boolean> {
    // Explicit rather than through ON DELETE CASCADE: SQLite enforces foreign keys only when
    // the connection turns them on.
    return this.#knex.transaction(async (trx) => {
      const jobIds = trx(TABLES.jobs).select('id').where('asset_id', id)
      await trx(TABLES.outputs).whereIn('job_id', jobIds).delete()
      await trx(TABLES.work).whereIn('job_id', jobIds).delete()
      await trx(TABLES.jobs).where('asset_id', id).delete()
      return (await trx(TABLES.assets).where({ id }).delete()) > 0
    })
  }

  async createJob(job: NewJob): Promise<{ job: Job; created: boolean; requestHash: string }> {
    try {
      await this.#knex.transaction(async (trx) => {
        const asset = await trx(TABLES.assets)
          .select('id')
          .where({ id: job.assetId, owner: job.owner })
          .first()
        // Missing, or another owner's: either way not this owner's asset.
        if (!asset) throw new NotFoundError('asset', job.assetId)
        const at = job.createdAt.getTime()
        await trx(TABLES.jobs).insert({
          id: job.id,
          owner: job.owner,
          asset_id: job.assetId,
          engine: job.engine,
          engine_job_id: null,
          state: 'submitted',
          progress: 0,
          error_code: null,
          error_message: null,
          idempotency_key: job.idempotencyKey,
          request_hash: job.requestHash,
          attempts: 0,
          created_at: at,
          updated_at: at,
          finished_at: null,
        })
        if (job.outputs.length > 0) {
          await trx(TABLES.outputs).insert(
            job.outputs.map((output, position) => ({
              job_id: job.id,
              name: output.name,
              position,
              preset_id: output.presetId,
              requested_preset_id: output.requestedPresetId ?? null,
              storage_key: output.storageKey,
              content_type: output.contentType,
              state: 'submitted',
            })),
          )
        }
      })
    } catch (error) {
      if (!isUniqueViolation(error)) throw error
      // The unique index refused the row: the job that won the key, committed with its outputs.
      if (job.idempotencyKey !== null) {
        const existing = await this.#jobWhere(this.#knex, {
          owner: job.owner,
          idempotency_key: job.idempotencyKey,
        })
        if (existing) return existing
      }
      throw new InvalidStateError(`job ${job.id} already exists`)
    }
    const created = await this.getJob(job.id)
    if (!created) throw new Error(`job ${job.id} was created but cannot be read`)
    return { job: created, created: true, requestHash: job.requestHash }
  }

  async #jobWhere(
    db: Db,
    where: Partial<JobRow>,
  ): Promise<{ job: Job; created: false; requestHash: string } | null> {
    const row = await db<JobRow>(TABLES.jobs).where(where).first()
    if (!row) return null
    const [job] = await withOutputs(db, [row])
    return { job: job!, created: false, requestHash: row.request_hash }
  }

  async getJob(id: string): Promise<Job | null> {
    return readJob(this.#knex, id)
  }

  async getJobByIdempotencyKey(key: string, owner: Owner): Promise<Job | null> {
    return (await this.#jobWhere(this.#knex, { owner, idempotency_key: key }))?.job ?? null
  }

  async getJobByEngineJobId(engine: string, engineJobId: string): Promise<Job | null> {
    const row = await this.#knex<JobRow>(TABLES.jobs)
      .where({ engine, engine_job_id: engineJobId })
      .orderBy('created_at', 'desc')
      .first()
    return row ? ((await withOutputs(this.#knex, [row]))[0] ?? null) : null
  }

  async listJobs(request: ListJobsRequest = {}): Promise<Page<Job>> {
    const limit = pageLimit(request.limit)
    const query = this.#knex<JobRow>(TABLES.jobs)
    if (request.owner !== undefined) query.where('owner', request.owner)
    if (request.assetId !== undefined) query.where('asset_id', request.assetId)
    if (request.state !== undefined) query.where('state', request.state)
    if (request.cursor) after(query, 'created_at', 'id', decodeCursor(request.cursor))
    const rows = await query
      .orderBy([
        { column: 'created_at', order: 'desc' },
        { column: 'id', order: 'desc' },
      ])
      .limit(limit + 1)
    return page(await withOutputs(this.#knex, rows), limit)
  }

  async updateJob(id: string, patch: JobPatch): Promise<Job | null> {
    return this.#knex.transaction(async (trx) => {
      const now = Date.now()
      const set: Record<string, unknown> = {
        // Never earlier than the last change, whatever order concurrent updates commit in.
        updated_at: trx.raw('case when updated_at > ? then updated_at else ? end', [now, now]),
      }
      // `submitted` is where every job starts: asking for it again never moves a job back.
      if (patch.state !== undefined && patch.state !== 'submitted') set.state = patch.state
      if (patch.state !== undefined && isTerminal(patch.state)) {
        set.finished_at = trx.raw('case when updated_at > ? then updated_at else ? end', [now, now])
      }
      if (patch.progress !== undefined) {
        const progress = clampProgress(patch.progress)
        set.progress = trx.raw('case when progress < ? then ? else progress end', [
          progress,
          progress,
        ])
      }
      if (patch.engineJobId !== undefined) set.engine_job_id = patch.engineJobId
      if (patch.errorCode !== undefined) set.error_code = patch.errorCode
      if (patch.errorMessage !== undefined) set.error_message = patch.errorMessage
      if (patch.incrementAttempts) set.attempts = trx.raw('attempts + 1')
      // One conditional statement decides, under the row's write lock: a job that another
      // update made terminal first is left as it is.
      const updated = await trx(TABLES.jobs)
        .where('id', id)
        .whereNotIn('state', TERMINAL)
        .update(set)
      if (updated > 0) {
        for (const output of patch.outputs ?? []) {
          const outputSet: Record<string, unknown> = {}
          // An output's terminal state sticks; its size and duration may still be filled in.
          if (output.state !== undefined && output.state !== 'submitted') {
            outputSet.state = trx.raw(
              `case when state in (${TERMINAL.map(() => '?').join(', ')}) then state else ? end`,
              [...TERMINAL, output.state],
            )
          }
          if (output.size !== undefined) outputSet.size = output.size
          if (output.durationSec !== undefined) outputSet.duration_sec = output.durationSec
          if (output.errorCode !== undefined) outputSet.error_code = output.errorCode
          if (output.errorMessage !== undefined) outputSet.error_message = output.errorMessage
          if (Object.keys(outputSet).length === 0) continue
          await trx(TABLES.outputs).where({ job_id: id, name: output.name }).update(outputSet)
        }
      }
      return readJob(trx, id)
    })
  }
}

/** Makes the `Repository` on Strapi's Knex instance. */
export function knexRepository(options: KnexRepositoryOptions): KnexRepository {
  return new KnexRepository(options)
}

async function readJob(db: Db, id: string): Promise<Job | null> {
  const row = await db<JobRow>(TABLES.jobs).where({ id }).first()
  return row ? ((await withOutputs(db, [row]))[0] ?? null) : null
}

/** Newest first: rows strictly after the cursor's (createdAt, id). */
function after(
  query: Knex.QueryBuilder,
  timeColumn: string,
  idColumn: string,
  cursor: { createdAt: Date; id: string },
): void {
  const time = cursor.createdAt.getTime()
  query.where((q) =>
    q
      .where(timeColumn, '<', time)
      .orWhere((same) => same.where(timeColumn, '=', time).andWhere(idColumn, '<', cursor.id)),
  )
}

async function withOutputs(db: Db, rows: JobRow[]): Promise<Job[]> {
  if (rows.length === 0) return []
  const outputs = await db<OutputRow>(TABLES.outputs)
    .whereIn(
      'job_id',
      rows.map((row) => row.id),
    )
    .orderBy('position')
  const byJob = new Map<string, OutputRow[]>()
  for (const output of outputs) {
    const list = byJob.get(output.job_id) ?? []
    list.push(output)
    byJob.set(output.job_id, list)
  }
  return rows.map((row) => toJob(row, byJob.get(row.id) ?? []))
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
    media: JSON.parse(row.media),
    createdAt: new Date(Number(row.created_at)),
  }
}

function toJob(row: JobRow, outputs: OutputRow[]): Job {
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
    attempts: Number(row.attempts),
    outputs: outputs.map((output) => ({
      jobId: row.id,
      name: output.name,
      presetId: output.preset_id,
      ...(output.requested_preset_id ? { requestedPresetId: output.requested_preset_id } : {}),
      storageKey: output.storage_key,
      contentType: output.content_type,
      state: output.state,
      size: output.size === null ? null : Number(output.size),
      durationSec: output.duration_sec === null ? null : Number(output.duration_sec),
      errorCode: output.error_code,
      errorMessage: output.error_message,
    })),
    createdAt: new Date(Number(row.created_at)),
    updatedAt: new Date(Number(row.updated_at)),
    finishedAt: row.finished_at === null ? null : new Date(Number(row.finished_at)),
  }
}

function page<T extends { createdAt: Date; id: string }>(rows: T[], limit: number): Page<T> {
  const items = rows.slice(0, limit)
  const last = items.at(-1)
  return {
    items,
    nextCursor: rows.length > limit && last ? encodeCursor(last.createdAt, last.id) : null,
  }
}

function clampProgress(value: number): number {
  if (!Number.isFinite(value)) return 0
  return Math.min(100, Math.max(0, value))
}
