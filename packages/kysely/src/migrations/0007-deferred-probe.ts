import type { Kysely } from 'kysely'
import type { Migration } from 'kysely/migration'

// Frozen: once released, this file never changes. It takes `Kysely<any>` and imports no
// application code.

/**
 * An asset ingested with `probe: 'deferred'` is recorded before ffprobe has read it: its
 * `media` is NULL until its first job's worker probes it.
 */
export function deferredProbe(schema: string): Migration {
  return {
    async up(root: Kysely<any>) {
      await root
        .withSchema(schema)
        .schema.alterTable('assets')
        .alterColumn('media', (col) => col.dropNotNull())
        .execute()
    },
    async down(root: Kysely<any>) {
      const db = root.withSchema(schema)
      // Assets never probed have nothing to put back: they go, with their jobs (cascade).
      await db.deleteFrom('assets').where('media', 'is', null).execute()
      await db.schema
        .alterTable('assets')
        .alterColumn('media', (col) => col.setNotNull())
        .execute()
    },
  }
}
