import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { EtCustomPresets } from '../et-custom-presets.ts'
import type { EtJobs } from '../et-jobs.ts'
import type { ResolvedEtOptions } from '../plugin-options.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /** The owner of the access key that signed an Elastic Transcoder API request. */
    etOwner: string
    /** The JSON body of an Elastic Transcoder API request, once its signature is verified. */
    etBody: unknown
  }
}

/** What every route file of the API is given. */
export interface RouteContext {
  app: FastifyInstance
  settings: ResolvedEtOptions
  jobs: EtJobs
  presets: EtCustomPresets
}

export type EtRequest = FastifyRequest<{
  Params: Record<string, string>
  Querystring: Record<string, string | undefined>
}>
