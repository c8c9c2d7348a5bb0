import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/** An error a fake answers as AWS REST-JSON services do: a status, a type and a message. */
export class ServiceError extends Error {
  readonly status: number
  readonly type: string
  constructor(status: number, type: string, message: string) {
    super(message)
    this.status = status
    this.type = type
  }
}

/** The request body as JSON, `null` when there is none; `notJson` is thrown for anything else. */
export async function readJson(req: IncomingMessage, notJson: ServiceError): Promise<unknown> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  if (chunks.length === 0) return null
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw notJson
  }
}

export interface RestJsonServer {
  /** `http://127.0.0.1:<port>`: give it as the client's `endpoint`. */
  endpoint: string
  /** Drops open connections and stops listening. */
  close(): Promise<void>
}

/**
 * Serves `route` on a free port of 127.0.0.1. A `ServiceError` it throws is answered the AWS
 * way (its status, `x-amzn-errortype: <type><errorTypeSuffix>`, `{"message"}`); anything else
 * as a 500 of type `internalErrorType`.
 */
export async function serveRestJson(
  route: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  options: { internalErrorType: string; errorTypeSuffix?: string },
): Promise<RestJsonServer> {
  const server = createServer((req, res) => {
    route(req, res).catch((error: unknown) => {
      const e =
        error instanceof ServiceError
          ? error
          : new ServiceError(500, options.internalErrorType, String(error))
      res.writeHead(e.status, {
        'content-type': 'application/json',
        'x-amzn-errortype': `${e.type}${options.errorTypeSuffix ?? ''}`,
      })
      res.end(JSON.stringify({ message: e.message }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
