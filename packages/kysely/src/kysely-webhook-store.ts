import {
  type ListWebhookDeliveriesRequest,
  type NewWebhookDelivery,
  type Page,
  pageLimit,
  type WebhookAttempt,
  type WebhookDelivery,
  type WebhookDeliveryStore,
} from '@transcodekit/core'
import { type Kysely, sql } from 'kysely'
import { resolveSchema } from './kysely-migrations.ts'
import { newestFirstPage } from './newest-first-page.ts'
import type { WebhookDeliveriesTable, WebhookDeliveryRow } from './webhook-deliveries-table.ts'

export interface KyselyWebhookStoreOptions {
  /** A Kysely instance on PostgreSQL or PGlite. The app owns it: the store never closes it. */
  db: Kysely<any>
  /** The schema `migrateToLatest` created the tables in. @default 'transcodekit' */
  schema?: string
}

type Db = Kysely<{ webhook_deliveries: WebhookDeliveriesTable }>

/**
 * Webhook deliveries on PostgreSQL or PGlite (migration 0004). The contract's rules are the
 * database's: a unique (endpoint_id, event_key), and single-statement conditional updates, so
 * they hold across processes.
 */
export class KyselyWebhookStore implements WebhookDeliveryStore {
  readonly #db: Db

  constructor(options: KyselyWebhookStoreOptions) {
    if (!options?.db)
      throw new TypeError('kyselyWebhookStore needs option "db" (a Kysely instance)')
    this.#db = (options.db as Db).withSchema(resolveSchema(options.schema))
  }

  async create(
    input: NewWebhookDelivery,
  ): Promise<{ delivery: WebhookDelivery; created: boolean }> {
    const [inserted] = await insertDeliveries(this.#db, [input])
    if (inserted) return { delivery: inserted, created: true }
    // The conflicting insert has committed (ON CONFLICT waited for it): this read sees it.
    const existing = await this.#db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('endpoint_id', '=', input.endpointId)
      .where('event_key', '=', input.eventKey)
      .executeTakeFirstOrThrow()
    return { delivery: toDelivery(existing), created: false }
  }

  async get(id: string): Promise<WebhookDelivery | null> {
    const row = await this.#db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst()
    return row ? toDelivery(row) : null
  }

  async list(request: ListWebhookDeliveriesRequest = {}): Promise<Page<WebhookDelivery>> {
    const limit = pageLimit(request.limit)
    let query = this.#db.selectFrom('webhook_deliveries').selectAll()
    if (request.owner !== undefined) query = query.where('owner', '=', request.owner)
    if (request.endpointId !== undefined)
      query = query.where('endpoint_id', '=', request.endpointId)
    if (request.state !== undefined) query = query.where('state', '=', request.state)
    return newestFirstPage(query, {
      columns: ['created_at', 'id'],
      cursor: request.cursor,
      limit,
      validId: (id) => id.length <= 64,
      toItem: toDelivery,
    })
  }

  async recordAttempt(id: string, attempt: WebhookAttempt): Promise<WebhookDelivery | null> {
    const state = attempt.delivered
      ? 'delivered'
      : attempt.nextAttemptAt === null
        ? 'failed'
        : 'pending'
    const updated = await this.#db
      .updateTable('webhook_deliveries')
      .set({
        state,
        attempts: sql`attempts + 1`,
        last_status: attempt.status,
        last_error: attempt.error,
        next_attempt_at: state === 'pending' ? attempt.nextAttemptAt : null,
        delivered_at: attempt.delivered ? attempt.at : null,
        updated_at: attempt.at,
      })
      .where('id', '=', id)
      .where('state', '=', 'pending')
      .returningAll()
      .executeTakeFirst()
    return updated ? toDelivery(updated) : this.get(id)
  }

  async requeue(id: string, at: Date): Promise<WebhookDelivery | null> {
    const updated = await this.#db
      .updateTable('webhook_deliveries')
      .set({ state: 'pending', next_attempt_at: at, updated_at: at })
      .where('id', '=', id)
      .where('state', '<>', 'pending')
      .returningAll()
      .executeTakeFirst()
    return updated ? toDelivery(updated) : null
  }

  async listDue(before: Date, limit: number): Promise<WebhookDelivery[]> {
    const rows = await this.#db
      .selectFrom('webhook_deliveries')
      .selectAll()
      .where('state', '=', 'pending')
      .where('next_attempt_at', '<=', before)
      .orderBy('next_attempt_at')
      .limit(pageLimit(limit))
      .execute()
    return rows.map(toDelivery)
  }

  async pruneEnded(before: Date, limit: number): Promise<number> {
    // Found by the creation index, oldest first (a delivery ends after it is made, so
    // `created_at < before` loses none), then deleted by primary key: `= any(array(…))` keeps
    // the planner from a hash join over the whole table (200,000 rows: 158 ms against 11 ms).
    // State and time are checked again on delete, so a delivery requeued meanwhile stays.
    const oldestEnded = this.#db
      .selectFrom('webhook_deliveries')
      .select('id')
      .where('created_at', '<', before)
      .where('updated_at', '<', before)
      .where('state', '<>', 'pending')
      .orderBy('created_at')
      .limit(limit)
    const { numDeletedRows } = await this.#db
      .deleteFrom('webhook_deliveries')
      .where(sql<boolean>`id = any(array(${oldestEnded}))`)
      .where('updated_at', '<', before)
      .where('state', '<>', 'pending')
      .executeTakeFirst()
    return Number(numDeletedRows)
  }
}

/**
 * Inserts `deliveries` as pending, due now, on `db` (the store's, or a transaction of the
 * repository's that records a job change's outbox); returns those inserted, an (endpoint,
 * event) already there being skipped.
 */
export async function insertDeliveries(
  db: Kysely<any>,
  deliveries: NewWebhookDelivery[],
): Promise<WebhookDelivery[]> {
  if (deliveries.length === 0) return []
  const rows = await (db as Db)
    .insertInto('webhook_deliveries')
    .values(
      deliveries.map((input) => ({
        id: input.id,
        owner: input.owner,
        endpoint_id: input.endpointId,
        event_type: input.eventType,
        event_key: input.eventKey,
        payload: input.payload,
        state: 'pending' as const,
        next_attempt_at: input.createdAt,
        created_at: input.createdAt,
        updated_at: input.createdAt,
      })),
    )
    .onConflict((oc) => oc.columns(['endpoint_id', 'event_key']).doNothing())
    .returningAll()
    .execute()
  return rows.map(toDelivery)
}

/** Makes the Kysely `WebhookDeliveryStore`. */
export function kyselyWebhookStore(options: KyselyWebhookStoreOptions): KyselyWebhookStore {
  return new KyselyWebhookStore(options)
}

function toDelivery(row: WebhookDeliveryRow): WebhookDelivery {
  return {
    id: row.id,
    owner: row.owner,
    endpointId: row.endpoint_id,
    eventType: row.event_type,
    eventKey: row.event_key,
    payload: row.payload,
    state: row.state,
    attempts: row.attempts,
    lastStatus: row.last_status,
    lastError: row.last_error,
    nextAttemptAt: row.next_attempt_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    deliveredAt: row.delivered_at,
  }
}
