import { Type } from '@sinclair/typebox'
import { authorize, ownerOf } from '../access-control.ts'
import type { ResolvedOptions } from '../plugin-options.ts'
import {
  AssetPageSchema,
  AssetSchema,
  errorResponses,
  IdParamsSchema,
  PageQuerySchema,
  ref,
} from '../schemas.ts'
import type { TypedInstance } from '../typed-instance.ts'

export function registerAssetRoutes(app: TypedInstance, settings: ResolvedOptions): void {
  const { service } = settings
  /** The owner's asset (another owner's answers 404), once `action` on it is allowed. */
  const ownAsset = async (
    request: Parameters<typeof ownerOf>[0],
    id: string,
    action: 'read' | 'delete',
  ) => {
    const asset = await service.getAsset(id, { owner: ownerOf(request) })
    await authorize(settings, request, action, { type: 'asset', asset })
    return asset
  }

  app.get(
    '/assets',
    {
      schema: {
        operationId: 'listAssets',
        tags: ['transcodekit'],
        summary: 'List assets, newest first',
        description: 'Pass `nextCursor` back as `cursor` for the next page.',
        querystring: PageQuerySchema,
        response: { 200: ref(AssetPageSchema), ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => {
      await authorize(settings, request, 'list')
      return service.listAssets({
        owner: ownerOf(request),
        limit: request.query.limit,
        cursor: request.query.cursor ?? null,
      })
    },
  )

  app.get(
    '/assets/:id',
    {
      schema: {
        operationId: 'getAsset',
        tags: ['transcodekit'],
        summary: 'Read an asset',
        params: IdParamsSchema,
        response: { 200: ref(AssetSchema), ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => ownAsset(request, request.params.id, 'read'),
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
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request, reply) => {
      const asset = await ownAsset(request, request.params.id, 'delete')
      await service.deleteAsset(asset.id, { owner: asset.owner })
      return reply.status(204).send(null)
    },
  )
}
