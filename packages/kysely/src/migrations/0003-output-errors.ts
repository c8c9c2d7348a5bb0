import type { Kysely } from 'kysely'
import type { Migration } from 'kysely/migration'

// Frozen: once released, this file never changes. It takes `Kysely<any>` and imports no
// application code. (Numbered 0003: 0002 is left to the owner columns made at the same time.)

/** An output can fail on its own while its job completes (a thumbnail with no frame). */
export function outputErrors(schema: string): Migration {
  return {
    async up(root: Kysely<any>) {
      await root
        .withSchema(schema)
        .schema.alterTable('outputs')
        .addColumn('error_code', 'text')
        .addColumn('error_message', 'text')
        .execute()
    },
    async down(root: Kysely<any>) {
      await root
        .withSchema(schema)
        .schema.alterTable('outputs')
        .dropColumn('error_code')
        .dropColumn('error_message')
        .execute()
    },
  }
}
