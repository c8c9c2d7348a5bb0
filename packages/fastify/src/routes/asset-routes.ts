import { Type } from '@sinclair/typebox'
import type { ResolvedOptions } from '../plugin-options.ts'
import {
  AssetPageSchema,
  AssetSchema,
  errorResponses,
  IdParamsSchema,
  PageQuerySchema,
  ref,
} from '../schemas.ts'
import type { TypedInstance } from '../transcodekit-plugin.ts'

export function registerAssetRoutes(app: TypedInstance, { service }: ResolvedOptions): void {
  app.get(
    '/assets',
    {
      schema: {
        operationId: 'listAssets',
        tags: ['transcodekit'],
        summary: 'List assets, newest first',
        description: 'Pass `nextCursor` back as `cursor` for the next page.',
        querystring: PageQuerySchema,
        response: { 200: ref(AssetPageSchema), ...errorResponses(400) },
      },
    },
    async (request) =>
      service.listAssets({ limit: request.query.limit, cursor: request.query.cursor ?? null }),
  )

  app.get(
    '/assets/:id',
    {
      schema: {
        operationId: 'getAsset',
        tags: ['transcodekit'],
        summary: 'Read an asset',
        params: IdParamsSchema,
        response: { 200: ref(AssetSchema), ...errorResponses(400, 404) },
      },
    },
    async (request) => service.getAsset(request.params.id),
  )

  app.delete(
    '/assets/:id',
    {
      schema: {
        operationId: 'deleteAsset',
        tags: ['transcodekit'],
        summary: 'Delete an asset, its original, its jobs and their outputs',
        description: 'Jobs still running are canceled first.',
        params: IdParamsSchema,
        response: {
          204: Type.Null({ description: 'Deleted' }),
          ...errorResponses(400, 404),
        },
      },
    },
    async (request, reply) => {
      await service.deleteAsset(request.params.id)
      return reply.status(204).send(null)
    },
  )
}
