import { randomUUID } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

/** One `Publish` as it crossed the wire. */
export interface SnsPublished {
  topicArn: string
  subject: string | null
  message: string
}

export interface SnsPublishFake {
  /** `http://127.0.0.1:<port>`: give it as the SNS client's `endpoint`. */
  endpoint: string
  published: SnsPublished[]
  /** Resolves once `count` messages have been published. */
  next(count: number): Promise<void>
  close(): Promise<void>
}

/**
 * A wire-level fake of Amazon SNS `Publish` (the AWS Query protocol the SDK v3 speaks to SNS:
 * a form-encoded POST, an XML answer). It records what is published; it checks no signature.
 */
export async function startSnsPublishFake(): Promise<SnsPublishFake> {
  const published: SnsPublished[] = []
  const waiters: Array<{ count: number; resolve: () => void }> = []
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'))
      if (form.get('Action') !== 'Publish' || !form.get('TopicArn') || !form.get('Message')) {
        res.writeHead(400, { 'content-type': 'text/xml' })
        res.end(
          '<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameter</Code><Message>Publish needs TopicArn and Message</Message></Error><RequestId>fake</RequestId></ErrorResponse>',
        )
        return
      }
      published.push({
        topicArn: form.get('TopicArn') as string,
        subject: form.get('Subject'),
        message: form.get('Message') as string,
      })
      res.writeHead(200, { 'content-type': 'text/xml' })
      res.end(
        `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>${randomUUID()}</MessageId></PublishResult><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></PublishResponse>`,
      )
      for (const waiter of waiters.filter((w) => published.length >= w.count)) waiter.resolve()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    published,
    next: (count) =>
      published.length >= count
        ? Promise.resolve()
        : new Promise<void>((resolve) => waiters.push({ count, resolve })),
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
