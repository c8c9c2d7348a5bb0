import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Webhook } from 'standardwebhooks'

/** A delivery the receiver accepted: its signature checked with `standardwebhooks`. */
export interface ReceivedWebhook {
  id: string
  type: string
  timestamp: string
  data: Record<string, unknown>
}

/**
 * A real HTTP receiver on 127.0.0.1 that checks every delivery's signature with
 * `Webhook.verify` (a bad one is answered 401 and counted in `rejected`). It can be stopped
 * (connections refused) and started again on the same port.
 *
 * @example
 * const receiver = await startWebhookReceiver(secret)
 * const event = await receiver.next((w) => w.type === 'job.complete')
 */
export class WebhookReceiver {
  readonly received: ReceivedWebhook[] = []
  /** Requests whose signature did not verify. */
  rejected = 0
  readonly #verifier: Webhook
  #server: Server | null = null
  #port = 0
  #waiters: Array<{
    test: (w: ReceivedWebhook) => boolean
    resolve: (w: ReceivedWebhook) => void
  }> = []

  constructor(secret: string) {
    this.#verifier = new Webhook(secret)
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}/hooks`
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      void this.#accept(req).then(
        (ok) => res.writeHead(ok ? 204 : 401).end(),
        () => res.writeHead(400).end(),
      )
    })
    server.listen(this.#port, '127.0.0.1')
    await once(server, 'listening')
    this.#port = (server.address() as AddressInfo).port
    this.#server = server
  }

  /** Closes the port: further deliveries meet a refused connection. */
  async stop(): Promise<void> {
    const server = this.#server
    this.#server = null
    if (!server) return
    server.closeAllConnections()
    await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())))
  }

  /** The first delivery (already received or to come) that passes `test`. */
  next(test: (w: ReceivedWebhook) => boolean = () => true): Promise<ReceivedWebhook> {
    const seen = this.received.find(test)
    if (seen) return Promise.resolve(seen)
    return new Promise((resolve) => this.#waiters.push({ test, resolve }))
  }

  async #accept(req: IncomingMessage): Promise<boolean> {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const body = Buffer.concat(chunks).toString('utf8')
    const headers = {
      'webhook-id': String(req.headers['webhook-id'] ?? ''),
      'webhook-timestamp': String(req.headers['webhook-timestamp'] ?? ''),
      'webhook-signature': String(req.headers['webhook-signature'] ?? ''),
    }
    let payload: { type: string; timestamp: string; data: Record<string, unknown> }
    try {
      payload = this.#verifier.verify(body, headers) as typeof payload
    } catch {
      this.rejected++
      return false
    }
    const webhook = { id: headers['webhook-id'], ...payload }
    this.received.push(webhook)
    const waiting = this.#waiters
    this.#waiters = waiting.filter((w) => !w.test(webhook))
    for (const w of waiting) if (w.test(webhook)) w.resolve(webhook)
    return true
  }
}

/** Starts a `WebhookReceiver` on a free port of 127.0.0.1. */
export async function startWebhookReceiver(secret: string): Promise<WebhookReceiver> {
  const receiver = new WebhookReceiver(secret)
  await receiver.start()
  return receiver
}

/** A fresh Standard Webhooks secret (`whsec_…`, 32 random bytes). */
export function webhookSecret(): string {
  return `whsec_${crypto.getRandomValues(Buffer.alloc(32)).toString('base64')}`
}
