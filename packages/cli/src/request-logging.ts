import { type FastifyReply, type FastifyRequest, LogController } from 'fastify'

/**
 * Fastify's per-request log lines (`incoming request`, `request completed`), with the reads a
 * client polls (a job's status, the lists, the presets) at `debug` instead of `info`: at
 * `LOG_LEVEL=info` a server answering thousands of status reads a second would otherwise spend
 * about a tenth of its time writing two lines for each. Everything else, and every failure
 * (a 5xx is logged at `error`, a refusal by the plugin's error handler at `info`), is logged as
 * Fastify logs it.
 */
export class QuietReadsLogController extends LogController {
  readonly #quiet: Set<string>

  /** @param prefix The transcodekit routes' prefix (`/api`). */
  constructor(prefix: string) {
    super()
    this.#quiet = new Set(
      ['/jobs', '/jobs/:id', '/assets', '/assets/:id', '/presets'].map((path) => prefix + path),
    )
  }

  /** Whether `request` is one of the polled reads. */
  isQuietRead(request: FastifyRequest): boolean {
    const method = request.method
    return (method === 'GET' || method === 'HEAD') && this.#quiet.has(request.routeOptions.url!)
  }

  override incomingRequest(request: FastifyRequest, reply: FastifyReply): void {
    if (!this.isQuietRead(request)) super.incomingRequest(request, reply)
    else if (!this.isLogDisabled(request)) request.log.debug({ req: request }, 'incoming request')
  }

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    if (error || !this.isQuietRead(request)) super.requestCompleted(error, request, reply)
    else if (!this.isLogDisabled(request)) {
      reply.log.debug({ res: reply, responseTime: reply.elapsedTime }, 'request completed')
    }
  }
}
