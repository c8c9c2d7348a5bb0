import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ElasticTranscoderClient } from '@aws-sdk/client-elastic-transcoder'
import Fastify, { type FastifyInstance } from 'fastify'
import elasticTranscoderApi, { type ElasticTranscoderApiOptions } from '../src/index.ts'

export const ALICE = {
  accessKeyId: 'AKIDALICE0000001',
  secretAccessKey: 'alice-secret-0123456789',
  owner: 'alice',
}
export const BOB = {
  accessKeyId: 'AKIDBOB000000001',
  secretAccessKey: 'bob-secret-0123456789ab',
  owner: 'bob',
}

/** A Fastify app serving the API on a free port of 127.0.0.1, and its base URL. */
export async function startEtApp(
  options: Omit<ElasticTranscoderApiOptions, 'keys'> &
    Partial<Pick<ElasticTranscoderApiOptions, 'keys'>>,
): Promise<{ app: FastifyInstance; endpoint: string }> {
  const app = Fastify()
  await app.register(elasticTranscoderApi, { keys: [ALICE, BOB], ...options })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, endpoint: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` }
}

/** An unchanged SDK client: only its endpoint and credentials are set. */
export function etClient(
  endpoint: string,
  credentials: { accessKeyId: string; secretAccessKey: string } = ALICE,
): ElasticTranscoderClient {
  return new ElasticTranscoderClient({
    endpoint,
    region: 'us-east-1',
    credentials: {
      accessKeyId: credentials.accessKeyId,
      secretAccessKey: credentials.secretAccessKey,
    },
    maxAttempts: 1,
  })
}

/** An HTTP receiver of notifications: every body it was sent, parsed. */
export async function startReceiver(): Promise<{
  url: string
  bodies: Array<Record<string, unknown>>
  next(count: number): Promise<void>
  close(): Promise<void>
}> {
  const bodies: Array<Record<string, unknown>> = []
  const waiters: Array<{ count: number; resolve: () => void }> = []
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')))
      res.writeHead(200).end()
      for (const waiter of waiters.filter((w) => bodies.length >= w.count)) waiter.resolve()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/et`,
    bodies,
    next: (count) =>
      bodies.length >= count
        ? Promise.resolve()
        : new Promise<void>((resolve) => waiters.push({ count, resolve })),
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
