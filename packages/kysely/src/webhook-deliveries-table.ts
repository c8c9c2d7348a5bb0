import type { WebhookDeliveryState, WebhookEventType } from '@transcodekit/core'
import type { ColumnType, Selectable } from 'kysely'

type Timestamp = ColumnType<Date, Date, Date>

/** One webhook event for one endpoint (migration 0004). */
export interface WebhookDeliveriesTable {
  /** `msg_…`: the `webhook-id`. */
  id: string
  owner: string
  endpoint_id: string
  event_type: WebhookEventType
  /** Unique with `endpoint_id`. */
  event_key: string
  payload: string
  state: WebhookDeliveryState
  attempts: ColumnType<number, number | undefined, number>
  last_status: number | null
  last_error: string | null
  next_attempt_at: Timestamp | null
  created_at: Timestamp
  updated_at: Timestamp
  delivered_at: Timestamp | null
}

export type WebhookDeliveryRow = Selectable<WebhookDeliveriesTable>
