import assert from 'node:assert/strict'
import type { Owner } from '@transcodekit/core'
import { type ColumnType, type Kysely, type Selectable, sql } from 'kysely'
import {
  ET_TERMINAL,
  type EtJobPatch,
  type EtJobRecord,
  type EtListRequest,
  type EtNotifications,
  type EtOutputRecord,
  type EtPage,
  type EtPipelineRecord,
  type EtPresetRecord,
  type EtStatus,
  type EtStore,
} from './et-store.ts'
import { type EtPresetsTable, KyselyEtPresets } from './kysely-et-presets.ts'

/** `jsonb`: written as a JSON string, read as a value. */
type Json<T> = ColumnType<T, string, string>
type Timestamp = ColumnType<Date, Date, Date>

export interface EtPipelinesTable {
  id: string
  owner: string
  name: string
  status: 'Active' | 'Paused'
  input_bucket: string
  output_bucket: string
  role: string
  aws_kms_key_arn: string | null
  notifications: Json<EtNotifications>
  created_at: Timestamp
}

export interface EtJobsTable {
  id: string
  owner: string
  pipeline_id: string
  core_job_id: string | null
  input: Json<EtJobRecord['input']>
  output_key_prefix: string
  outputs: Json<EtOutputRecord[]>
  playlists: Json<unknown[]>
  user_metadata: Json<Record<string, string> | null>
  status: EtStatus
  submitted_at: Timestamp
  started_at: Timestamp | null
  finished_at: Timestamp | null
  delivery_claimed_at: Timestamp | null
}

interface EtTables {
  et_pipelines: EtPipelinesTable
  et_jobs: EtJobsTable
  et_presets: EtPresetsTable
}

export interface KyselyEtStoreOptions {
  /** A Kysely instance the app owns: the store never closes it. */
  // biome-ignore lint/suspicious/noExplicitAny: the app's instance, typed by the app's own tables
  db: Kysely<any>
  /**
   * The PostgreSQL schema of the tables, made by `migrateToLatest` of `@transcodekit/kysely`
   * (migrations `transcodekit-0005-elastic-transcoder` and `transcodekit-0006-et-presets`). @default 'transcodekit'
   */
  schema?: string
}

function toPipeline(row: Selectable<EtPipelinesTable>): EtPipelineRecord {
  return {
    id: row.id,
    owner: row.owner,
    name: row.name,
    status: row.status,
    inputBucket: row.input_bucket,
    outputBucket: row.output_bucket,
    role: row.role,
    awsKmsKeyArn: row.aws_kms_key_arn,
    notifications: row.notifications,
    createdAt: row.created_at,
  }
}

function toJob(row: Selectable<EtJobsTable>): EtJobRecord {
  return {
    id: row.id,
    owner: row.owner,
    pipelineId: row.pipeline_id,
    coreJobId: row.core_job_id,
    input: row.input,
    outputKeyPrefix: row.output_key_prefix,
    outputs: row.outputs,
    playlists: row.playlists,
    userMetadata: row.user_metadata,
    status: row.status,
    submittedAt: row.submitted_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
  }
}

function page<T extends { id: string }>(rows: T[], limit: number): EtPage<T> {
  const items = rows.slice(0, limit)
  return { items, next: rows.length > limit ? (items.at(-1)?.id ?? null) : null }
}

/** An `EtStore` on PostgreSQL (or PGlite) through Kysely: what several processes share. */
export class KyselyEtStore implements EtStore {
  readonly #db: Kysely<EtTables>
  readonly #presets: KyselyEtPresets

  constructor(options: KyselyEtStoreOptions) {
    const schema = options.schema ?? 'transcodekit'
    assert.match(
      schema,
      /^[a-z_][a-z0-9_]{0,62}$/,
      'kyselyEtStore: option "schema" must be a lower-case PostgreSQL identifier',
    )
    this.#db = (options.db as Kysely<EtTables>).withSchema(schema)
    this.#presets = new KyselyEtPresets(
      this.#db as unknown as Kysely<{ et_presets: EtPresetsTable }>,
    )
  }

  createPreset(
    preset: EtPresetRecord,
    { maxPerOwner = Number.POSITIVE_INFINITY }: { maxPerOwner?: number } = {},
  ): Promise<'created' | 'limit'> {
    return this.#presets.create(preset, maxPerOwner)
  }

  getPreset(id: string, owner: Owner): Promise<EtPresetRecord | null> {
    return this.#presets.get(id, owner)
  }

  listPresets(owner: Owner): Promise<EtPresetRecord[]> {
    return this.#presets.list(owner)
  }

  deletePreset(id: string, owner: Owner): Promise<boolean> {
    return this.#presets.delete(id, owner)
  }

  async createPipeline(
    p: EtPipelineRecord,
    { maxPerOwner = Number.POSITIVE_INFINITY }: { maxPerOwner?: number } = {},
  ): Promise<'created' | 'limit'> {
    const row = {
      id: p.id,
      owner: p.owner,
      name: p.name,
      status: p.status,
      input_bucket: p.inputBucket,
      output_bucket: p.outputBucket,
      role: p.role,
      aws_kms_key_arn: p.awsKmsKeyArn,
      notifications: JSON.stringify(p.notifications),
      created_at: p.createdAt,
    }
    if (maxPerOwner === Number.POSITIVE_INFINITY) {
      await this.#db.insertInto('et_pipelines').values(row).execute()
      return 'created'
    }
    // The owner's pipelines are counted and added under a lock of that owner, held to the
    // commit: two requests at once cannot both see room for one more.
    return this.#db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext(${`transcodekit.et_pipelines:${p.owner}`}))`.execute(
        trx,
      )
      const { count } = await trx
        .selectFrom('et_pipelines')
        .select((eb) => eb.fn.countAll<string>().as('count'))
        .where('owner', '=', p.owner)
        .executeTakeFirstOrThrow()
      if (Number(count) >= maxPerOwner) return 'limit'
      await trx.insertInto('et_pipelines').values(row).execute()
      return 'created'
    })
  }

  async getPipeline(id: string, owner: Owner): Promise<EtPipelineRecord | null> {
    const row = await this.#db
      .selectFrom('et_pipelines')
      .selectAll()
      .where('id', '=', id)
      .where('owner', '=', owner)
      .executeTakeFirst()
    return row ? toPipeline(row) : null
  }

  async listPipelines(request: EtListRequest): Promise<EtPage<EtPipelineRecord>> {
    let query = this.#db
      .selectFrom('et_pipelines')
      .selectAll()
      .where('owner', '=', request.owner)
      .orderBy('id', request.ascending ? 'asc' : 'desc')
      .limit(request.limit + 1)
    if (request.after !== null)
      query = query.where('id', request.ascending ? '>' : '<', request.after)
    return page((await query.execute()).map(toPipeline), request.limit)
  }

  async updatePipeline(
    id: string,
    owner: Owner,
    patch: Partial<Omit<EtPipelineRecord, 'id' | 'owner' | 'createdAt'>>,
  ): Promise<EtPipelineRecord | null> {
    const row = await this.#db
      .updateTable('et_pipelines')
      .set({
        ...(patch.name !== undefined ? { name: patch.name } : {}),
        ...(patch.status !== undefined ? { status: patch.status } : {}),
        ...(patch.inputBucket !== undefined ? { input_bucket: patch.inputBucket } : {}),
        ...(patch.outputBucket !== undefined ? { output_bucket: patch.outputBucket } : {}),
        ...(patch.role !== undefined ? { role: patch.role } : {}),
        ...(patch.awsKmsKeyArn !== undefined ? { aws_kms_key_arn: patch.awsKmsKeyArn } : {}),
        ...(patch.notifications !== undefined
          ? { notifications: JSON.stringify(patch.notifications) }
          : {}),
      })
      .where('id', '=', id)
      .where('owner', '=', owner)
      .returningAll()
      .executeTakeFirst()
    return row ? toPipeline(row) : null
  }

  async deletePipeline(id: string, owner: Owner): Promise<'deleted' | 'missing' | 'in-use'> {
    // One statement: a job that is not finished keeps its pipeline, whatever runs meanwhile.
    const deleted = await this.#db
      .deleteFrom('et_pipelines')
      .where('id', '=', id)
      .where('owner', '=', owner)
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('et_jobs')
              .select(sql`1`.as('one'))
              .where('pipeline_id', '=', id)
              .where('status', 'not in', ET_TERMINAL),
          ),
        ),
      )
      .returning('id')
      .executeTakeFirst()
    if (deleted) return 'deleted'
    return (await this.getPipeline(id, owner)) ? 'in-use' : 'missing'
  }

  async createJob(job: EtJobRecord): Promise<void> {
    await this.#db
      .insertInto('et_jobs')
      .values({
        id: job.id,
        owner: job.owner,
        pipeline_id: job.pipelineId,
        core_job_id: job.coreJobId,
        input: JSON.stringify(job.input),
        output_key_prefix: job.outputKeyPrefix,
        outputs: JSON.stringify(job.outputs),
        playlists: JSON.stringify(job.playlists),
        user_metadata: JSON.stringify(job.userMetadata),
        status: job.status,
        submitted_at: job.submittedAt,
        started_at: job.startedAt,
        finished_at: job.finishedAt,
      })
      .execute()
  }

  async getJob(id: string, owner: Owner): Promise<EtJobRecord | null> {
    const row = await this.#db
      .selectFrom('et_jobs')
      .selectAll()
      .where('id', '=', id)
      .where('owner', '=', owner)
      .executeTakeFirst()
    return row ? toJob(row) : null
  }

  async getJobById(id: string): Promise<EtJobRecord | null> {
    const row = await this.#db
      .selectFrom('et_jobs')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst()
    return row ? toJob(row) : null
  }

  async listJobs(
    request: EtListRequest & { pipelineId?: string; status?: EtStatus },
  ): Promise<EtPage<EtJobRecord>> {
    let query = this.#db
      .selectFrom('et_jobs')
      .selectAll()
      .where('owner', '=', request.owner)
      .orderBy('id', request.ascending ? 'asc' : 'desc')
      .limit(request.limit + 1)
    if (request.pipelineId !== undefined)
      query = query.where('pipeline_id', '=', request.pipelineId)
    if (request.status !== undefined) query = query.where('status', '=', request.status)
    if (request.after !== null)
      query = query.where('id', request.ascending ? '>' : '<', request.after)
    return page((await query.execute()).map(toJob), request.limit)
  }

  async updateJob(
    id: string,
    patch: EtJobPatch,
    options: { onlyIf?: readonly EtStatus[] } = {},
  ): Promise<EtJobRecord | null> {
    let query = this.#db
      .updateTable('et_jobs')
      .set({
        ...(patch.coreJobId !== undefined ? { core_job_id: patch.coreJobId } : {}),
        ...(patch.outputs !== undefined ? { outputs: JSON.stringify(patch.outputs) } : {}),
        ...(patch.status !== undefined ? { status: patch.status } : {}),
        ...(patch.startedAt !== undefined ? { started_at: patch.startedAt } : {}),
        ...(patch.finishedAt !== undefined ? { finished_at: patch.finishedAt } : {}),
      })
      .where('id', '=', id)
      .where('status', 'not in', ET_TERMINAL)
    if (options.onlyIf) query = query.where('status', 'in', options.onlyIf)
    const row = await query.returningAll().executeTakeFirst()
    return row ? toJob(row) : null
  }

  async listUnfinishedJobs(limit: number, after?: string): Promise<EtJobRecord[]> {
    let query = this.#db
      .selectFrom('et_jobs')
      .selectAll()
      .where('status', 'in', ['Submitted', 'Progressing'])
      .orderBy('id')
      .limit(limit)
    if (after !== undefined) query = query.where('id', '>', after)
    const rows = await query.execute()
    return rows.map(toJob)
  }

  async claimDelivery(id: string, leaseMs: number): Promise<boolean> {
    // The database's clock decides, in one statement: no two processes hold a live claim,
    // whatever their own clocks say.
    const lapsed = sql<Date>`now() - make_interval(secs => ${leaseMs / 1000})`
    const result = await this.#db
      .updateTable('et_jobs')
      .set({ delivery_claimed_at: sql<Date>`now()` })
      .where('id', '=', id)
      .where((eb) =>
        eb.or([eb('delivery_claimed_at', 'is', null), eb('delivery_claimed_at', '<=', lapsed)]),
      )
      .executeTakeFirst()
    return result.numUpdatedRows === 1n
  }
}

/** An `EtStore` on the app's Kysely instance (PostgreSQL or PGlite). */
export function kyselyEtStore(options: KyselyEtStoreOptions): EtStore {
  return new KyselyEtStore(options)
}
