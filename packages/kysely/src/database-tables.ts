import type { JobState, MediaInfo, Preset } from '@transcodekit/core'
import type { ColumnType, Insertable, Selectable, Updateable } from 'kysely'

/** `timestamptz`: read as a `Date`, written as a `Date` or an SQL expression. */
type Timestamp = ColumnType<Date, Date, Date>

/**
 * `bigint`: node-postgres reads `int8` as a string, PGlite as a number; the repository turns
 * both into numbers (sizes stay far below 2^53).
 */
type BigIntColumn = ColumnType<string | number, number, number>

export interface AssetsTable {
  id: string
  owner: string
  storage_key: string
  original_filename: string | null
  content_type: string
  size: BigIntColumn
  sha256: string
  /** `jsonb`: written as a JSON string, read as an object; NULL until probed (migration 0007). */
  media: ColumnType<MediaInfo | null, string | null, string>
  created_at: Timestamp
}

export interface JobsTable {
  id: string
  /** The asset's owner (a foreign key on (asset_id, owner)). */
  owner: string
  asset_id: string
  engine: string
  engine_job_id: string | null
  state: JobState
  /** `double precision`, 0–100 */
  progress: ColumnType<number, number | undefined, number>
  error_code: string | null
  error_message: string | null
  /** Unique per owner: one key, one job. */
  idempotency_key: string | null
  request_hash: string
  attempts: ColumnType<number, number | undefined, number>
  created_at: Timestamp
  updated_at: Timestamp
  finished_at: Timestamp | null
}

export interface OutputsTable {
  job_id: string
  name: string
  /** Keeps the outputs in the order the job asked for them. */
  position: number
  preset_id: string
  storage_key: string
  content_type: string
  state: JobState
  size: BigIntColumn | null
  duration_sec: number | null
  /** Why this output failed while its job completed. */
  error_code: string | null
  error_message: string | null
  /** The name the preset was asked for by, when not its id (migration 0005). */
  requested_preset_id: string | null
  /** The job's own (custom) preset, when not one of the catalog (migration 0006). */
  preset: ColumnType<Preset | null, string | null, string | null>
}

/** The tables of `@transcodekit/kysely`, as seen through `db.withSchema(schema)`. */
export interface TranscodekitDatabase {
  assets: AssetsTable
  jobs: JobsTable
  outputs: OutputsTable
}

export type AssetRow = Selectable<AssetsTable>
export type NewAssetRow = Insertable<AssetsTable>
export type AssetUpdate = Updateable<AssetsTable>
export type JobRow = Selectable<JobsTable>
export type NewJobRow = Insertable<JobsTable>
export type JobUpdate = Updateable<JobsTable>
export type OutputRow = Selectable<OutputsTable>
export type NewOutputRow = Insertable<OutputsTable>
export type OutputUpdate = Updateable<OutputsTable>
