import { NotFoundError, type RequestErrorCode, TranscodeKitError } from '@transcodekit/core'
import { type TranscodeRecord, UPLOAD_FILE_MODEL } from '../lifecycle-adapter.ts'
import type { StrapiHost } from '../strapi-host.ts'
import type { TranscodekitStrapiService } from '../strapi-plugin.ts'
import {
  ADMIN_SCOPE,
  type AdminFile,
  adminJob,
  fileIdParam,
  fileOf,
  jobIdParam,
  listQuery,
} from './admin-views.ts'
import { PLUGIN_NAME } from './permissions.ts'

/** The parts of a Koa context the controller uses. */
export interface AdminContext {
  params: Record<string, string | undefined>
  query: Record<string, unknown>
  status: number
  body: unknown
}

/** What the controller needs of Strapi: the plugin's service and the upload plugin's table. */
export type AdminHost = Pick<StrapiHost, 'db' | 'log'> & {
  plugin(name: string): { service(name: string): unknown } | undefined
}

/**
 * The admin panel's controller (`admin.<action>` in routes.ts). The routes' policies have
 * already checked the admin's permission; every job is looked up in the CMS's owner scope.
 */
export function adminController({ strapi }: { strapi: AdminHost }) {
  const plugin = () =>
    strapi.plugin(PLUGIN_NAME)!.service('transcoder') as TranscodekitStrapiService

  return {
    listJobs: handle(strapi, async (ctx) => {
      const request = listQuery(ctx.query)
      const page = await plugin().service.listJobs({ ...request, ...ADMIN_SCOPE })
      const items = await Promise.all(page.items.map((job) => adminJob(plugin(), job)))
      return { items, nextCursor: page.nextCursor }
    }),

    getJob: handle(strapi, async (ctx) => {
      const job = await plugin().service.getJob(jobIdParam(ctx.params.id), ADMIN_SCOPE)
      return adminJob(plugin(), job)
    }),

    getFile: handle(strapi, async (ctx): Promise<AdminFile> => {
      const id = fileIdParam(ctx.params.fileId)
      const row = await strapi.db.query(UPLOAD_FILE_MODEL).findOne({
        where: { id },
        select: ['id', 'name', 'mime', 'url', 'provider_metadata'],
      })
      if (!row) throw new NotFoundError('file', String(id))
      const metadata = row.provider_metadata as Record<string, unknown> | null
      const record = (metadata?.[PLUGIN_NAME] as TranscodeRecord | undefined) ?? null
      const job = record?.jobId
        ? await plugin()
            .service.getJob(record.jobId, ADMIN_SCOPE)
            .catch((error: unknown) => {
              if (error instanceof NotFoundError) return null
              throw error
            })
        : null
      return {
        file: {
          id,
          name: String(row.name ?? ''),
          mime: String(row.mime ?? ''),
          url: typeof row.url === 'string' ? row.url : null,
        },
        record,
        job: job ? await adminJob(plugin(), job) : null,
      }
    }),

    retryJob: handle(strapi, async (ctx) => {
      const service = plugin()
      const job = await service.service.retry(jobIdParam(ctx.params.id), ADMIN_SCOPE)
      // The entry now shows the new job, and follows it to its end.
      const fileId = await fileOf(service, job)
      if (fileId) service.track(fileId, job.id)
      return adminJob(service, job)
    }),

    cancelJob: handle(strapi, async (ctx) => {
      const job = await plugin().service.cancel(jobIdParam(ctx.params.id), ADMIN_SCOPE)
      return adminJob(plugin(), job)
    }),
  }
}

/** The refusals an admin route answers with their code; any other error is a logged 500. */
const STATUS: Partial<Record<RequestErrorCode, number>> = {
  INVALID_REQUEST: 400,
  INVALID_CURSOR: 400,
  NOT_FOUND: 404,
  INVALID_STATE: 409,
  TOO_MANY_JOBS: 429,
}

/**
 * Runs an action and answers its result; a transcodekit error becomes a 4xx with its `code`,
 * anything else is logged and answered as a 500 without its details.
 */
function handle(strapi: AdminHost, action: (ctx: AdminContext) => Promise<unknown>) {
  return async (ctx: AdminContext): Promise<void> => {
    try {
      ctx.body = { data: await action(ctx) }
      ctx.status = 200
    } catch (error) {
      const code = error instanceof TranscodeKitError ? error.code : null
      const status = code ? STATUS[code as RequestErrorCode] : undefined
      if (status && error instanceof Error) {
        ctx.status = status
        ctx.body = { data: null, error: { status, code, message: error.message } }
        return
      }
      strapi.log.error(
        `transcodekit: admin request failed: ${error instanceof Error ? error.stack : String(error)}`,
      )
      ctx.status = 500
      ctx.body = {
        data: null,
        error: { status: 500, code: 'INTERNAL', message: 'the request could not be handled' },
      }
    }
  }
}
