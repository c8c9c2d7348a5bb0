import { execFile } from 'node:child_process'
import { createSign } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { snsStringToSign, snsVerifier } from '@transcodekit/aws'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { makeApp, type TestApp } from './helpers.ts'

const TOPIC = 'arn:aws:sns:us-east-1:123456789012:transcoder'
const CERT_URL = 'https://sns.us-east-1.amazonaws.com/SimpleNotificationService-test.pem'
const SUBSCRIBE_URL = 'https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=abc'

let dir: string
let key: string
let cert: string
/** Every request the verifier made: SNS's wire, recorded. */
let fetched: string[]
let t: TestApp | null = null

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'transcodekit-sns-'))
  await promisify(execFile)('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=sns.amazonaws.com',
    '-keyout',
    join(dir, 'key.pem'),
    '-out',
    join(dir, 'cert.pem'),
  ])
  key = await readFile(join(dir, 'key.pem'), 'utf8')
  cert = await readFile(join(dir, 'cert.pem'), 'utf8')
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})
afterEach(async () => {
  await t?.close()
  t = null
})

async function appWithVerifier(setup?: (app: TestApp['app']) => void) {
  fetched = []
  const verifier = snsVerifier({
    topicArns: [TOPIC],
    fetch: async (url) => {
      fetched.push(url)
      return new Response(url === CERT_URL ? cert : 'ok', { status: 200 })
    },
  })
  t = await makeApp({ worker: false, notifications: verifier, prefix: '/api', setup })
  return t
}

function signed(fields: Record<string, string>, signWith = key) {
  const message: Record<string, string> = {
    MessageId: crypto.randomUUID(),
    TopicArn: TOPIC,
    Timestamp: new Date().toISOString(),
    SignatureVersion: '2',
    SigningCertURL: CERT_URL,
    ...fields,
  }
  message.Signature = createSign('RSA-SHA256')
    .update(snsStringToSign(message))
    .sign(signWith, 'base64')
  return message
}

function post(app: TestApp['app'], body: unknown, contentType = 'text/plain; charset=UTF-8') {
  return app.inject({
    method: 'POST',
    url: '/api/notifications/sns',
    headers: { 'content-type': contentType, 'x-amz-sns-message-type': 'Notification' },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  })
}

describe('POST /notifications/sns', () => {
  it('confirms a subscription only after the message verifies', async () => {
    const { app } = await appWithVerifier()
    const message = signed({
      Type: 'SubscriptionConfirmation',
      Message: 'confirm',
      SubscribeURL: SUBSCRIBE_URL,
      Token: 'abc',
    })
    const res = await post(app, message)
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual({ type: 'SubscriptionConfirmation', jobId: null })
    expect(fetched).toEqual([CERT_URL, SUBSCRIBE_URL])
  })

  it('refuses a forged message with 403 and never fetches its SubscribeURL', async () => {
    const { app } = await appWithVerifier()
    const message = signed({
      Type: 'SubscriptionConfirmation',
      Message: 'confirm',
      SubscribeURL: SUBSCRIBE_URL,
      Token: 'abc',
    })
    const forged = {
      ...message,
      SubscribeURL: 'https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=evil',
    }
    const res = await post(app, forged)
    expect(res.statusCode).toBe(403)
    expect(res.json()).toMatchObject({
      statusCode: 403,
      code: 'TRANSCODEKIT_NOTIFICATION_REJECTED',
      error: 'Forbidden',
    })
    expect(fetched).toEqual([CERT_URL])

    const unknownTopic = signed({
      Type: 'Notification',
      Message: '{}',
      TopicArn: 'arn:aws:sns:us-east-1:123456789012:other',
    })
    expect((await post(app, unknownTopic)).json().code).toBe('TRANSCODEKIT_NOTIFICATION_REJECTED')
  })

  it('hands a verified notification to the service once; a replay is refused', async () => {
    const { app } = await appWithVerifier()
    const message = signed({
      Type: 'Notification',
      Message: JSON.stringify({ state: 'COMPLETED', jobId: '1-abc' }),
    })
    const res = await post(app, message)
    expect(res.statusCode).toBe(200)
    // The ffmpeg engine receives no notifications: nothing about this job is ours.
    expect(res.json()).toEqual({ type: 'Notification', jobId: null })
    const replay = await post(app, message)
    expect(replay.statusCode).toBe(403)
    expect(replay.json().code).toBe('TRANSCODEKIT_NOTIFICATION_REJECTED')
  })

  it('400 for a body that is not JSON, or a message that is not', async () => {
    const { app } = await appWithVerifier()
    const bad = await post(app, 'not json {')
    expect(bad.statusCode).toBe(400)
    expect(bad.json().code).toBe('TRANSCODEKIT_INVALID_REQUEST')
    const notJsonMessage = await post(app, signed({ Type: 'Notification', Message: 'plain words' }))
    expect(notJsonMessage.statusCode).toBe(400)
    expect(notJsonMessage.json().code).toBe('TRANSCODEKIT_INVALID_REQUEST')
    // JSON sent as application/json is read too.
    const json = await post(
      app,
      signed({ Type: 'Notification', Message: '{}' }),
      'application/json',
    )
    expect(json.statusCode).toBe(200)
  })

  it('does not exist without the notifications option', async () => {
    t = await makeApp({ worker: false, prefix: '/api' })
    const res = await post(t.app, signed({ Type: 'Notification', Message: '{}' }))
    expect(res.statusCode).toBe(404)
  })

  it("reads text/plain as JSON on its own route only: the app's routes still get text", async () => {
    const { app } = await appWithVerifier((app) => {
      app.post('/echo', async (request) => ({ type: typeof request.body, body: request.body }))
    })
    const res = await app.inject({
      method: 'POST',
      url: '/echo',
      headers: { 'content-type': 'text/plain' },
      payload: '{"a":1}',
    })
    expect(res.json()).toEqual({ type: 'string', body: '{"a":1}' })
  })
})
