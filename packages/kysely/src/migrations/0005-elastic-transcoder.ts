import { type Kysely, sql } from 'kysely'
import type { Migration } from 'kysely/migration'

// Frozen: once released, this file never changes. It takes `Kysely<any>` and imports no
// application code. (0004 is left to the webhook tables made at the same time.)

const STATUSES = sql`('Submitted', 'Progressing', 'Complete', 'Canceled', 'Error')`

/**
 * The tables of the Elastic Transcoder API (`@transcodekit/elastic-transcoder-api`): its
 * pipelines, and the ET side of its jobs (the pipeline, the input and outputs as the client
 * sent them, preset ids as sent, user metadata); the core job keeps the media side. And, for
 * every output, the preset name it was asked for by (`requested_preset_id`), beside its id.
 */
export function elasticTranscoder(schema: string): Migration {
  return {
    async up(root: Kysely<any>) {
      const db = root.withSchema(schema)
      await db.schema
        .createTable('et_pipelines')
        .addColumn('id', 'text', (col) => col.primaryKey())
        .addColumn('owner', 'text', (col) => col.notNull())
        .addColumn('name', 'text', (col) => col.notNull())
        .addColumn('status', 'text', (col) =>
          col.notNull().check(sql`status in ('Active', 'Paused')`),
        )
        .addColumn('input_bucket', 'text', (col) => col.notNull())
        .addColumn('output_bucket', 'text', (col) => col.notNull())
        .addColumn('role', 'text', (col) => col.notNull())
        .addColumn('aws_kms_key_arn', 'text')
        .addColumn('notifications', 'jsonb', (col) => col.notNull())
        .addColumn('created_at', 'timestamptz', (col) => col.notNull())
        .execute()
      // ListPipelines: one owner's, by id (ids sort by creation time).
      await db.schema
        .createIndex('et_pipelines_owner_id_idx')
        .on('et_pipelines')
        .columns(['owner', 'id'])
        .execute()

      await db.schema
        .createTable('et_jobs')
        .addColumn('id', 'text', (col) => col.primaryKey())
        .addColumn('owner', 'text', (col) => col.notNull())
        // A pipeline with jobs is deleted only once they have ended; their records stay.
        .addColumn('pipeline_id', 'text', (col) => col.notNull())
        .addColumn('core_job_id', 'uuid', (col) => col.unique())
        .addColumn('input', 'jsonb', (col) => col.notNull())
        .addColumn('output_key_prefix', 'text', (col) => col.notNull())
        .addColumn('outputs', 'jsonb', (col) => col.notNull())
        .addColumn('playlists', 'jsonb', (col) => col.notNull())
        .addColumn('user_metadata', 'jsonb')
        .addColumn('status', 'text', (col) => col.notNull().check(sql`status in ${STATUSES}`))
        .addColumn('submitted_at', 'timestamptz', (col) => col.notNull())
        .addColumn('started_at', 'timestamptz')
        .addColumn('finished_at', 'timestamptz')
        // Set once, by the one process that copies the job's outputs to their bucket.
        .addColumn('delivery_claimed_at', 'timestamptz')
        .execute()
      await db.schema
        .createIndex('et_jobs_pipeline_id_id_idx')
        .on('et_jobs')
        .columns(['pipeline_id', 'id'])
        .execute()
      await db.schema
        .createIndex('et_jobs_owner_status_id_idx')
        .on('et_jobs')
        .columns(['owner', 'status', 'id'])
        .execute()
      // The jobs not ended yet, which the API brings up to date now and then.
      await db.schema
        .createIndex('et_jobs_unfinished_idx')
        .on('et_jobs')
        .column('id')
        .where(sql.ref('status'), 'in', sql`('Submitted', 'Progressing')`)
        .execute()

      // Every output keeps the preset name it was asked for by (an ET id), beside the id.
      await db.schema.alterTable('outputs').addColumn('requested_preset_id', 'text').execute()
    },
    async down(root: Kysely<any>) {
      const db = root.withSchema(schema)
      await db.schema.alterTable('outputs').dropColumn('requested_preset_id').execute()
      await db.schema.dropTable('et_jobs').execute()
      await db.schema.dropTable('et_pipelines').execute()
    },
  }
}
