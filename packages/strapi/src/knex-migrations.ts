import type { Knex } from 'knex'

/** Names of the plugin's tables in Strapi's database. */
export const TABLES = Object.freeze({
  assets: 'transcodekit_assets',
  jobs: 'transcodekit_jobs',
  outputs: 'transcodekit_outputs',
  work: 'transcodekit_work',
  migrations: 'transcodekit_migrations',
})

interface Migration {
  name: string
  up(knex: Knex): Promise<void>
}

// Frozen in time: a migration never changes once released, a change is a new one. Times are
// epoch milliseconds in bigint columns, the one representation that sorts and round-trips the
// same on SQLite, PostgreSQL and MySQL (MySQL's DATETIME drops milliseconds by default).
const MIGRATIONS: readonly Migration[] = [
  {
    name: '0001-strapi-tables',
    async up(knex) {
      await knex.schema.createTable(TABLES.assets, (t) => {
        t.string('id', 36).primary()
        t.string('owner', 255).notNullable()
        t.text('storage_key').notNullable()
        t.text('original_filename').nullable()
        t.string('content_type', 255).notNullable()
        t.bigInteger('size').notNullable()
        t.string('sha256', 64).notNullable()
        t.text('media').notNullable()
        t.bigInteger('created_at').notNullable()
        t.index(['owner', 'created_at', 'id'], 'transcodekit_assets_owner_created')
        t.index(['created_at', 'id'], 'transcodekit_assets_created')
      })
      await knex.schema.createTable(TABLES.jobs, (t) => {
        t.string('id', 36).primary()
        t.string('owner', 255).notNullable()
        t.string('asset_id', 36)
          .notNullable()
          .references('id')
          .inTable(TABLES.assets)
          .onDelete('CASCADE')
        t.string('engine', 100).notNullable()
        t.string('engine_job_id', 255).nullable()
        t.string('state', 20).notNullable()
        t.double('progress').notNullable().defaultTo(0)
        t.string('error_code', 100).nullable()
        t.text('error_message').nullable()
        t.string('idempotency_key', 255).nullable()
        t.string('request_hash', 255).notNullable()
        t.integer('attempts').notNullable().defaultTo(0)
        t.bigInteger('created_at').notNullable()
        t.bigInteger('updated_at').notNullable()
        t.bigInteger('finished_at').nullable()
        // One key, one job, per owner: enforced here, whatever the number of processes.
        t.unique(['owner', 'idempotency_key'], { indexName: 'transcodekit_jobs_owner_key' })
        t.index(['asset_id'], 'transcodekit_jobs_asset')
        t.index(['engine', 'engine_job_id'], 'transcodekit_jobs_engine_job')
        t.index(['state', 'created_at'], 'transcodekit_jobs_state_created')
        t.index(['created_at', 'id'], 'transcodekit_jobs_created')
      })
      await knex.schema.createTable(TABLES.outputs, (t) => {
        t.string('job_id', 36)
          .notNullable()
          .references('id')
          .inTable(TABLES.jobs)
          .onDelete('CASCADE')
        t.string('name', 255).notNullable()
        t.integer('position').notNullable()
        t.string('preset_id', 255).notNullable()
        // The preset id as the client asked for it, where it differs from the canonical one.
        t.string('requested_preset_id', 255).nullable()
        t.text('storage_key').notNullable()
        t.string('content_type', 255).notNullable()
        t.string('state', 20).notNullable()
        t.bigInteger('size').nullable()
        t.double('duration_sec').nullable()
        t.string('error_code', 100).nullable()
        t.text('error_message').nullable()
        t.primary(['job_id', 'name'], 'transcodekit_outputs_pk')
      })
      // The queue: one row per job handed to a worker, claimed under a lease.
      await knex.schema.createTable(TABLES.work, (t) => {
        t.string('job_id', 36).primary()
        t.bigInteger('available_at').notNullable()
        t.string('locked_by', 64).nullable()
        t.bigInteger('locked_until').nullable()
        t.integer('deliveries').notNullable().defaultTo(0)
        t.index(['available_at'], 'transcodekit_work_available')
      })
    },
  },
]

/**
 * Creates or upgrades the plugin's tables in Strapi's database, through Knex's migrator. Its
 * lock table makes two Strapi processes starting at once run each migration once; on a new
 * database both may race to create the migrator's own tables, or find the lock taken, and the
 * one that loses tries again (a few times, then fails with the last error).
 */
export async function migrateStrapiTables(knex: Knex): Promise<void> {
  const config: Knex.MigratorConfig = {
    tableName: TABLES.migrations,
    migrationSource: {
      getMigrations: async () => [...MIGRATIONS],
      getMigrationName: (migration: Migration) => migration.name,
      getMigration: async (migration: Migration) => ({
        up: (k: Knex) => migration.up(k),
        down: async () => {
          throw new Error(`transcodekit: migration ${migration.name} cannot be undone`)
        },
      }),
    },
  }
  for (let attempt = 1; ; attempt++) {
    try {
      await knex.migrate.latest(config)
      return
    } catch (error) {
      if (attempt >= MIGRATION_ATTEMPTS) throw error
      await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt))
    }
  }
}

const MIGRATION_ATTEMPTS = 6
