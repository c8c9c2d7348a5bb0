import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyPluginAsync } from 'fastify'
import { InvalidRequestError } from '../http-errors.ts'
import type { ResolvedOptions } from '../plugin-options.ts'
import { errorResponses } from '../schemas.ts'

const MAX_BODY_BYTES = 256 * 1024

/**
 * `POST /notifications/sns`, in its own context: SNS posts JSON as `text/plain`, and that
 * parser must not change how the app's other routes read text.
 */
export const registerNotificationRoute: FastifyPluginAsync<{ settings: ResolvedOptions }> = async (
  instance,
  { settings },
) => {
  const verifier = settings.notifications!
  const { service } = settings
  instance.removeContentTypeParser('text/plain')
  instance.addContentTypeParser(
    'text/plain',
    { parseAs: 'string', bodyLimit: MAX_BODY_BYTES },
    (_request, body, done) => {
      try {
        done(null, JSON.parse(body as string))
      } catch {
        done(InvalidRequestError('the notification body is not JSON'), undefined)
      }
    },
  )
  const app = instance.withTypeProvider<TypeBoxTypeProvider>()
  app.post(
    '/notifications/sns',
    {
      bodyLimit: MAX_BODY_BYTES,
      schema: {
        operationId: 'receiveSnsNotification',
        tags: ['transcodekit'],
        summary: 'Engine notifications delivered by Amazon SNS',
        description:
          'Every message is verified (signature, certificate host, topic, age) before anything ' +
          'acts on it. A `SubscriptionConfirmation` is confirmed only after it verifies; a ' +
          '`Notification` updates its job.',
        body: Type.Object(
          { Type: Type.String(), MessageId: Type.String(), TopicArn: Type.String() },
          { additionalProperties: true },
        ),
        response: {
          200: Type.Object({
            type: Type.String(),
            jobId: Type.Union([Type.String(), Type.Null()]),
          }),
          ...errorResponses(400, 403),
        },
      },
    },
    async (request) => {
      const message = await verifier.verify(request.body)
      if (message.Type === 'SubscriptionConfirmation') {
        await verifier.confirmSubscription(message)
        return { type: message.Type, jobId: null }
      }
      if (message.Type !== 'Notification') return { type: message.Type, jobId: null }
      let payload: unknown
      try {
        payload = JSON.parse(message.Message)
      } catch {
        throw InvalidRequestError('the notification message is not JSON')
      }
      const job = await service.handleNotification(payload)
      return { type: message.Type, jobId: job?.id ?? null }
    },
  )
}
