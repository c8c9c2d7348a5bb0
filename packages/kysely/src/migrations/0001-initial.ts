import { type Kysely, sql } from 'kysely'
import type { Migration } from 'kysely/migration'

// Frozen: once released, this file never changes. Later changes go in new migrations. It takes
// `Kysely<any>` and imports no application code, so it keeps meaning what it meant the day it ran.

const STATES = sql`('submitted', 'progressing', 'complete', 'error', 'canceled')`

export function initial(schema: string): Migration {
  return {
    async up(root: Kysely<any>) {
      await root.schema.createSchema(schema).ifNotExists().execute()
      const db = root.withSchema(schema)

      await db.schema
        .createTable('assets')
        .addColumn('id', 'uuid', (col) => col.primaryKey())
        .addColumn('storage_key', 'text', (col) => col.notNull())
        .addColumn('original_filename', 'text')
        .addColumn('content_type', 'text', (col) => col.notNull())
        .addColumn('size', 'bigint', (col) => col.notNull().check(sql`size >= 0`))
        .addColumn('sha256', 'text', (col) => col.notNull())
        .addColumn('media', 'jsonb', (col) => col.notNull())
        .addColumn('created_at', 'timestamptz', (col) => col.notNull())
        .execute()
      await db.schema
        .createIndex('assets_created_at_id_idx')
        .on('assets')
        .columns(['created_at desc', 'id desc'])
        .execute()

      await db.schema
        .createTable('jobs')
        .addColumn('id', 'uuid', (col) => col.primaryKey())
        .addColumn('asset_id', 'uuid', (col) =>
          col.notNull().references('assets.id').onDelete('cascade'),
        )
        .addColumn('engine', 'text', (col) => col.notNull())
        .addColumn('engine_job_id', 'text')
        .addColumn('state', 'text', (col) => col.notNull().check(sql`state in ${STATES}`))
        .addColumn('progress', 'double precision', (col) =>
          col.notNull().defaultTo(0).check(sql`progress >= 0 and progress <= 100`),
        )
        .addColumn('error_code', 'text')
        .addColumn('error_message', 'text')
        .addColumn('idempotency_key', 'text', (col) => col.unique())
        .addColumn('request_hash', 'text', (col) => col.notNull())
        .addColumn('attempts', 'integer', (col) => col.notNull().defaultTo(0))
        .addColumn('created_at', 'timestamptz', (col) => col.notNull())
        .addColumn('updated_at', 'timestamptz', (col) => col.notNull())
        .addColumn('finished_at', 'timestamptz')
        .execute()
      // The lookups the service makes: by engine job id (notifications), by asset (listing,
      // deleting an asset), by state (resuming after a restart), and the newest-first listing.
      await db.schema
        .createIndex('jobs_engine_job_id_idx')
        .on('jobs')
        .columns(['engine', 'engine_job_id'])
        .where('engine_job_id', 'is not', null)
        .execute()
      await db.schema
        .createIndex('jobs_asset_id_created_at_idx')
        .on('jobs')
        .columns(['asset_id', 'created_at desc', 'id desc'])
        .execute()
      await db.schema
        .createIndex('jobs_state_created_at_idx')
        .on('jobs')
        .columns(['state', 'created_at desc', 'id desc'])
        .execute()
      await db.schema
        .createIndex('jobs_created_at_id_idx')
        .on('jobs')
        .columns(['created_at desc', 'id desc'])
        .execute()

      await db.schema
        .createTable('outputs')
        .addColumn('job_id', 'uuid', (col) =>
          col.notNull().references('jobs.id').onDelete('cascade'),
        )
        .addColumn('name', 'text', (col) => col.notNull())
        .addColumn('position', 'integer', (col) => col.notNull())
        .addColumn('preset_id', 'text', (col) => col.notNull())
        .addColumn('storage_key', 'text', (col) => col.notNull().unique())
        .addColumn('content_type', 'text', (col) => col.notNull())
        .addColumn('state', 'text', (col) => col.notNull().check(sql`state in ${STATES}`))
        .addColumn('size', 'bigint')
        .addColumn('duration_sec', 'double precision')
        .addPrimaryKeyConstraint('outputs_pkey', ['job_id', 'name'])
        .execute()
    },

    async down(root: Kysely<any>) {
      const db = root.withSchema(schema)
      await db.schema.dropTable('outputs').execute()
      await db.schema.dropTable('jobs').execute()
      await db.schema.dropTable('assets').execute()
    },
  }
}
