import type { WebhookDelivery, WebhookDispatcher } from '@transcodekit/core'
import type { FastifyRequest } from 'fastify'
import { authorize, ownerOf } from '../access-control.ts'
import type { ResolvedOptions } from '../plugin-options.ts'
import { errorResponses, ref } from '../schemas.ts'
import type { TypedInstance } from '../typed-instance.ts'
import {
  DeliveryParamsSchema,
  DeliveryQuerySchema,
  WebhookDeliveryPageSchema,
  WebhookDeliverySchema,
  type WebhookDeliveryView,
} from '../webhook-schemas.ts'

/**
 * The owner's webhook deliveries: list them, read one, and send one again by hand. Another
 * owner's delivery answers 404, as any other resource.
 */
export function registerWebhookRoutes(
  app: TypedInstance,
  settings: ResolvedOptions,
  webhooks: WebhookDispatcher,
): void {
  /** The owner's delivery (another owner's answers 404), once `action` on it is allowed. */
  const ownDelivery = async (request: FastifyRequest, id: string, action: 'read' | 'redeliver') => {
    const delivery = await webhooks.get(id, { owner: ownerOf(request) })
    await authorize(settings, request, action, { type: 'webhookDelivery', delivery })
    return delivery
  }

  app.get(
    '/webhooks/deliveries',
    {
      schema: {
        operationId: 'listWebhookDeliveries',
        tags: ['transcodekit'],
        summary: 'List webhook deliveries, newest first',
        description:
          'One delivery per event and endpoint, with its attempts, last status and next try. Pass `nextCursor` back as `cursor` for the next page.',
        querystring: DeliveryQuerySchema,
        response: { 200: ref(WebhookDeliveryPageSchema), ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => {
      await authorize(settings, request, 'listDeliveries')
      const page = await webhooks.list({
        owner: ownerOf(request),
        state: request.query.state,
        limit: request.query.limit,
        cursor: request.query.cursor ?? null,
      })
      return { items: page.items.map(deliveryView), nextCursor: page.nextCursor }
    },
  )

  app.get(
    '/webhooks/deliveries/:id',
    {
      schema: {
        operationId: 'getWebhookDelivery',
        tags: ['transcodekit'],
        summary: 'Read a webhook delivery',
        params: DeliveryParamsSchema,
        response: { 200: ref(WebhookDeliverySchema), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => deliveryView(await ownDelivery(request, request.params.id, 'read')),
  )

  app.post(
    '/webhooks/deliveries/:id/redeliver',
    {
      schema: {
        operationId: 'redeliverWebhook',
        tags: ['transcodekit'],
        summary: 'Send a delivered or failed webhook again',
        description:
          'Same `webhook-id` and body, one attempt now. A delivery still waiting for its next attempt answers 409.',
        params: DeliveryParamsSchema,
        response: { 202: ref(WebhookDeliverySchema), ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request, reply) => {
      const delivery = await ownDelivery(request, request.params.id, 'redeliver')
      const requeued = await webhooks.redeliver(delivery.id, { owner: delivery.owner })
      return reply.status(202).send(deliveryView(requeued))
    },
  )
}

/** A delivery as the routes show it: the owner is the caller's own, and not repeated. */
function deliveryView(delivery: WebhookDelivery): WebhookDeliveryView {
  const { owner: _owner, eventKey: _eventKey, ...view } = delivery
  return view
}
