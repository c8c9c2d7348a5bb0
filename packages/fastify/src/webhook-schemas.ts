import { type Static, Type } from '@sinclair/typebox'

const DateTime = Type.Unsafe<Date | string>({ type: 'string', format: 'date-time' })
const NullableDateTime = Type.Unsafe<Date | string | null>({
  type: ['string', 'null'],
  format: 'date-time',
})

export const WebhookDeliverySchema = Type.Object(
  {
    id: Type.String({ description: 'The `webhook-id` header: the same on every attempt' }),
    endpointId: Type.String(),
    eventType: Type.String({ description: '`job.complete`, `asset.created`, …' }),
    state: Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed')]),
    attempts: Type.Integer({ minimum: 0 }),
    lastStatus: Type.Union([Type.Integer(), Type.Null()], {
      description: 'HTTP status of the last attempt; null when none came back',
    }),
    lastError: Type.Union([Type.String(), Type.Null()]),
    nextAttemptAt: NullableDateTime,
    payload: Type.String({ description: 'The exact body sent (Standard Webhooks JSON)' }),
    createdAt: DateTime,
    updatedAt: DateTime,
    deliveredAt: NullableDateTime,
  },
  { $id: 'TranscodekitWebhookDelivery', title: 'WebhookDelivery', additionalProperties: false },
)

export const WebhookDeliveryPageSchema = Type.Object(
  {
    items: Type.Array(Type.Ref('TranscodekitWebhookDelivery')),
    nextCursor: Type.Union([Type.String(), Type.Null()]),
  },
  { $id: 'TranscodekitWebhookDeliveryPage', title: 'WebhookDeliveryPage' },
)

export const DeliveryParamsSchema = Type.Object({
  id: Type.String({ pattern: '^msg_[0-9a-f]{32}$' }),
})

export const DeliveryQuerySchema = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
  cursor: Type.Optional(Type.String({ maxLength: 512 })),
  state: Type.Optional(
    Type.Union([Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed')]),
  ),
})

/** The webhook schemas the plugin adds beside its shared ones. */
export const webhookSchemas = [WebhookDeliverySchema, WebhookDeliveryPageSchema]

export type WebhookDeliveryView = Static<typeof WebhookDeliverySchema>
