import { execFile } from 'node:child_process'
import { createSign, randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { createServer as createHttpsServer, request as httpsRequest, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const execFileAsync = promisify(execFile)

/** What a `fetch` answers, as far as the SNS verifier reads it. */
export interface FetchAnswer {
  ok: boolean
  status: number
  text(): Promise<string>
}

/** A message as SNS posts it to an HTTP subscriber (the JSON body). */
export type SnsEnvelope = Record<string, string>

export interface SnsSigner {
  /** https://127.0.0.1:<port>/SimpleNotificationService-<id>.pem: the test signing certificate. */
  certUrl: string
  certPem: string
  keyPem: string
  /** A `fetch` that trusts the test certificate; records every URL it is asked for. */
  fetch(url: string, init?: { signal?: AbortSignal }): Promise<FetchAnswer>
  /** Every URL requested through `fetch`, whatever the host. */
  fetched: string[]
  /** Every path the https server was asked for. */
  served: string[]
  /** Tokens of subscriptions confirmed through the `SubscribeURL`. */
  confirmed: string[]
  /** Signs an envelope as SNS does (fields by type, `SignatureVersion` 1 = SHA1, 2 = SHA256). */
  sign(
    envelope: SnsEnvelope,
    options?: { version?: '1' | '2'; keyPem?: string; certUrl?: string },
  ): SnsEnvelope
  notification(options: {
    topicArn: string
    message: string
    subject?: string
    timestamp?: Date
    messageId?: string
    version?: '1' | '2'
  }): SnsEnvelope
  subscriptionConfirmation(options: {
    topicArn: string
    token?: string
    timestamp?: Date
  }): SnsEnvelope
  /** POSTs an envelope to an HTTP endpoint the way SNS does (`text/plain`, SNS headers). */
  deliver(
    endpoint: string,
    envelope: SnsEnvelope | string,
  ): Promise<{ status: number; body: string }>
  close(): Promise<void>
}

const NOTIFICATION_FIELDS = ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type']
const SUBSCRIPTION_FIELDS = [
  'Message',
  'MessageId',
  'SubscribeURL',
  'Timestamp',
  'Token',
  'TopicArn',
  'Type',
]

/** An RSA key and a self-signed certificate for 127.0.0.1, made by openssl in a temp folder. */
export async function makeTestCertificate(): Promise<{ certPem: string; keyPem: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'tk-sns-cert-'))
  try {
    await execFileAsync('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-days',
      '1',
    ])
    return {
      certPem: await readFile(join(dir, 'cert.pem'), 'utf8'),
      keyPem: await readFile(join(dir, 'key.pem'), 'utf8'),
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/**
 * SNS's side of HTTP deliveries, for tests: signs messages with a test key, serves the signing
 * certificate and the `SubscribeURL` over https on 127.0.0.1, and posts deliveries.
 */
export async function startSnsSigner(): Promise<SnsSigner> {
  const { certPem, keyPem } = await makeTestCertificate()
  const served: string[] = []
  const confirmed: string[] = []
  const fetched: string[] = []
  const certPath = `/SimpleNotificationService-${randomUUID().replace(/-/g, '')}.pem`
  const server: Server = createHttpsServer({ cert: certPem, key: keyPem }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1')
    served.push(url.pathname + url.search)
    if (url.pathname === certPath) {
      res.writeHead(200, { 'content-type': 'application/x-x509-ca-cert' }).end(certPem)
    } else if (url.pathname === '/' && url.searchParams.get('Action') === 'ConfirmSubscription') {
      confirmed.push(url.searchParams.get('Token') ?? '')
      res.writeHead(200, { 'content-type': 'text/xml' }).end('<ConfirmSubscriptionResponse/>')
    } else {
      res.writeHead(404).end()
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
  const certUrl = `${base}${certPath}`

  function sign(
    envelope: SnsEnvelope,
    options: { version?: '1' | '2'; keyPem?: string; certUrl?: string } = {},
  ): SnsEnvelope {
    const version = options.version ?? '1'
    const fields = envelope.Type === 'Notification' ? NOTIFICATION_FIELDS : SUBSCRIPTION_FIELDS
    let text = ''
    for (const field of fields) {
      if (envelope[field] !== undefined) text += `${field}\n${envelope[field]}\n`
    }
    const signature = createSign(version === '1' ? 'RSA-SHA1' : 'RSA-SHA256')
      .update(text, 'utf8')
      .sign(options.keyPem ?? keyPem, 'base64')
    return {
      ...envelope,
      SignatureVersion: version,
      Signature: signature,
      SigningCertURL: options.certUrl ?? certUrl,
    }
  }

  return {
    certUrl,
    certPem,
    keyPem,
    fetched,
    served,
    confirmed,
    fetch(url, init = {}) {
      fetched.push(url)
      return new Promise<FetchAnswer>((resolve, reject) => {
        const target = new URL(url)
        const send = target.protocol === 'https:' ? httpsRequest : httpRequest
        const req = send(target, { method: 'GET', ca: certPem, signal: init.signal }, (res) => {
          const chunks: Buffer[] = []
          res.on('data', (chunk: Buffer) => chunks.push(chunk))
          res.on('end', () => {
            const body = Buffer.concat(chunks).toString('utf8')
            const status = res.statusCode ?? 0
            resolve({ ok: status >= 200 && status < 300, status, text: async () => body })
          })
          res.on('error', reject)
        })
        req.on('error', reject)
        req.end()
      })
    },
    sign,
    notification(options) {
      const envelope: SnsEnvelope = {
        Type: 'Notification',
        MessageId: options.messageId ?? randomUUID(),
        TopicArn: options.topicArn,
        Message: options.message,
        Timestamp: (options.timestamp ?? new Date()).toISOString(),
        UnsubscribeURL: `${base}/?Action=Unsubscribe&SubscriptionArn=${options.topicArn}:sub`,
      }
      if (options.subject !== undefined) envelope.Subject = options.subject
      return sign(envelope, { version: options.version })
    },
    subscriptionConfirmation(options) {
      const token = options.token ?? randomUUID().replace(/-/g, '')
      return sign({
        Type: 'SubscriptionConfirmation',
        MessageId: randomUUID(),
        Token: token,
        TopicArn: options.topicArn,
        Message: `You have chosen to subscribe to the topic ${options.topicArn}.`,
        SubscribeURL: `${base}/?Action=ConfirmSubscription&TopicArn=${encodeURIComponent(options.topicArn)}&Token=${token}`,
        Timestamp: (options.timestamp ?? new Date()).toISOString(),
      })
    },
    async deliver(endpoint, envelope) {
      const body = typeof envelope === 'string' ? envelope : JSON.stringify(envelope)
      const parsed = typeof envelope === 'string' ? {} : envelope
      const response = await fetch(endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'text/plain; charset=UTF-8',
          'x-amz-sns-message-type': parsed.Type ?? 'Notification',
          'x-amz-sns-message-id': parsed.MessageId ?? '',
          'x-amz-sns-topic-arn': parsed.TopicArn ?? '',
          'user-agent': 'Amazon Simple Notification Service Agent',
        },
        body,
      })
      return { status: response.status, body: await response.text() }
    },
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
