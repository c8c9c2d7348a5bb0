import { type Kysely, sql } from 'kysely'
import type { Migration } from 'kysely/migration'

// Frozen: once released, this file never changes. It takes `Kysely<any>` and imports no
// application code.

/**
 * One row per webhook event and endpoint: the unique (endpoint_id, event_key) makes a second
 * enqueue of the same event a no-op in any process. Listing is by owner, newest first; the
 * pending rows are found by their next attempt.
 */
export function webhookDeliveries(schema: string): Migration {
  return {
    async up(root: Kysely<any>) {
      const db = root.withSchema(schema)
      await db.schema
        .createTable('webhook_deliveries')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('endpoint_id', 'text', (c) => c.notNull())
        .addColumn('event_type', 'text', (c) => c.notNull())
        .addColumn('event_key', 'text', (c) => c.notNull())
        .addColumn('payload', 'text', (c) => c.notNull())
        .addColumn('state', 'text', (c) =>
          c.notNull().check(sql`state in ('pending', 'delivered', 'failed')`),
        )
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('last_status', 'integer')
        .addColumn('last_error', 'text')
        .addColumn('next_attempt_at', 'timestamptz')
        .addColumn('created_at', 'timestamptz', (c) => c.notNull())
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
        .addColumn('delivered_at', 'timestamptz')
        .addUniqueConstraint('webhook_deliveries_event_unique', ['endpoint_id', 'event_key'])
        .execute()
      await db.schema
        .createIndex('webhook_deliveries_owner_created')
        .on('webhook_deliveries')
        .columns(['owner', 'created_at desc', 'id desc'])
        .execute()
      await db.schema
        .createIndex('webhook_deliveries_created')
        .on('webhook_deliveries')
        .columns(['created_at desc', 'id desc'])
        .execute()
      await db.schema
        .createIndex('webhook_deliveries_due')
        .on('webhook_deliveries')
        .column('next_attempt_at')
        .where(sql.ref('state'), '=', 'pending')
        .execute()
    },
    async down(root: Kysely<any>) {
      await root.withSchema(schema).schema.dropTable('webhook_deliveries').execute()
    },
  }
}
