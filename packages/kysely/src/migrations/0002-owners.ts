import { type Kysely, sql } from 'kysely'
import type { Migration } from 'kysely/migration'

// Frozen: once released, this file never changes. Later changes go in new migrations. It takes
// `Kysely<any>` and imports no application code, so it keeps meaning what it meant the day it ran.

/** The owner that rows made before owners existed get: the one every app had until then. */
const PREVIOUS_OWNER = 'default'

/**
 * Assets and jobs get an owner. Rows already there get `'default'`; new rows must name theirs
 * (the column default goes once the rows are filled). Idempotency keys become unique per
 * owner, and the listings by owner get their indexes.
 */
export function owners(schema: string): Migration {
  return {
    async up(root: Kysely<any>) {
      const db = root.withSchema(schema)
      for (const table of ['assets', 'jobs']) {
        await db.schema
          .alterTable(table)
          .addColumn('owner', 'text', (col) => col.notNull().defaultTo(PREVIOUS_OWNER))
          .execute()
        await db.schema
          .alterTable(table)
          .alterColumn('owner', (col) => col.dropDefault())
          .execute()
      }
      // A job's owner is its asset's owner, and stays so: (asset_id, owner) must name an asset
      // of that owner.
      await db.schema
        .alterTable('assets')
        .addUniqueConstraint('assets_id_owner_key', ['id', 'owner'])
        .execute()
      await db.schema
        .alterTable('jobs')
        .addForeignKeyConstraint('jobs_asset_id_owner_fkey', ['asset_id', 'owner'], 'assets', [
          'id',
          'owner',
        ])
        .onDelete('cascade')
        .onUpdate('cascade')
        .execute()

      // One key, one job: per owner, so that one owner's key never finds another's job.
      await db.schema.alterTable('jobs').dropConstraint('jobs_idempotency_key_key').execute()
      await db.schema
        .alterTable('jobs')
        .addUniqueConstraint('jobs_owner_idempotency_key_key', ['owner', 'idempotency_key'])
        .execute()

      // The newest-first listings of one owner, and of one owner's jobs in one state (how many
      // an owner has waiting or running).
      await db.schema
        .createIndex('assets_owner_created_at_idx')
        .on('assets')
        .columns(['owner', 'created_at desc', 'id desc'])
        .execute()
      await db.schema
        .createIndex('jobs_owner_created_at_idx')
        .on('jobs')
        .columns(['owner', 'created_at desc', 'id desc'])
        .execute()
      await db.schema
        .createIndex('jobs_owner_state_created_at_idx')
        .on('jobs')
        .columns(['owner', 'state', 'created_at desc', 'id desc'])
        .execute()
    },

    async down(root: Kysely<any>) {
      const db = root.withSchema(schema)
      await db.schema.dropIndex('jobs_owner_state_created_at_idx').execute()
      await db.schema.dropIndex('jobs_owner_created_at_idx').execute()
      await db.schema.dropIndex('assets_owner_created_at_idx').execute()
      await db.schema.alterTable('jobs').dropConstraint('jobs_owner_idempotency_key_key').execute()
      // Keys that only differed by owner cannot all stay unique: the newest job keeps its key.
      await sql`
        update ${sql.table(`${schema}.jobs`)} as j set idempotency_key = null
        where idempotency_key is not null and exists (
          select 1 from ${sql.table(`${schema}.jobs`)} as k
          where k.idempotency_key = j.idempotency_key
            and (k.created_at, k.id) > (j.created_at, j.id)
        )`.execute(root)
      await db.schema
        .alterTable('jobs')
        .addUniqueConstraint('jobs_idempotency_key_key', ['idempotency_key'])
        .execute()
      await db.schema.alterTable('jobs').dropConstraint('jobs_asset_id_owner_fkey').execute()
      await db.schema.alterTable('assets').dropConstraint('assets_id_owner_key').execute()
      await db.schema.alterTable('jobs').dropColumn('owner').execute()
      await db.schema.alterTable('assets').dropColumn('owner').execute()
    },
  }
}
