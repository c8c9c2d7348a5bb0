import { type Kysely, sql } from 'kysely'
import type { Migration } from 'kysely/migration'

// Frozen: once released, this file never changes. It takes `Kysely<any>` and imports no
// application code.

/**
 * The custom presets of the Elastic Transcoder API (`@transcodekit/elastic-transcoder-api`):
 * each owner's, as CreatePreset made them, with the core preset each maps onto. And, for every
 * output made with a preset of its job's own (not the catalog's), a copy of that preset.
 */
export function etPresets(schema: string): Migration {
  return {
    async up(root: Kysely<any>) {
      const db = root.withSchema(schema)
      await db.schema
        .createTable('et_presets')
        .addColumn('id', 'text', (col) => col.primaryKey())
        .addColumn('owner', 'text', (col) => col.notNull())
        .addColumn('name', 'text', (col) => col.notNull())
        // The ET fields as answered (Container, Audio, Video, Description).
        .addColumn('settings', 'jsonb', (col) => col.notNull())
        // The core preset (PresetSchema) a job runs.
        .addColumn('preset', 'jsonb', (col) => col.notNull())
        .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
        .execute()
      // ListPresets and the per-owner cap: one owner's, by id.
      await db.schema
        .createIndex('et_presets_owner_id_idx')
        .on('et_presets')
        .columns(['owner', 'id'])
        .execute()
      // The job runs from its own copy: deleting the custom preset later changes nothing.
      await db.schema.alterTable('outputs').addColumn('preset', 'jsonb').execute()
    },
    async down(root: Kysely<any>) {
      const db = root.withSchema(schema)
      await db.schema.alterTable('outputs').dropColumn('preset').execute()
      await db.schema.dropTable('et_presets').execute()
    },
  }
}
