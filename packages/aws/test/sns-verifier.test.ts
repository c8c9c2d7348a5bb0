import { generateKeyPairSync } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { NotificationRejectedError } from '@transcodekit/core'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { type SnsSigner, startSnsSigner } from '../../../test/fakes/sns-signer.ts'
import { snsStringToSign, snsVerifier } from '../src/index.ts'

const TOPIC = 'arn:aws:sns:us-east-1:123456789012:transcodes'
const LOCAL = /^127\.0\.0\.1$/

let sns: SnsSigner
let plainHttp: Server
let plainHttpHits = 0
let plainHttpUrl: string

beforeAll(async () => {
  sns = await startSnsSigner()
  plainHttp = createServer((_req, res) => {
    plainHttpHits++
    res.end(sns.certPem)
  })
  await new Promise<void>((resolve) => plainHttp.listen(0, '127.0.0.1', resolve))
  plainHttpUrl = `http://127.0.0.1:${(plainHttp.address() as AddressInfo).port}/cert.pem`
})

afterAll(async () => {
  await sns?.close()
  await new Promise((resolve) => plainHttp?.close(resolve))
})

beforeEach(() => {
  sns.fetched.length = 0
  sns.served.length = 0
  plainHttpHits = 0
})

function verifier(options: Partial<Parameters<typeof snsVerifier>[0]> = {}) {
  return snsVerifier({ topicArns: [TOPIC], trustedCertHost: LOCAL, fetch: sns.fetch, ...options })
}

async function rejection(promise: Promise<unknown>): Promise<NotificationRejectedError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(NotificationRejectedError)
  expect((error as NotificationRejectedError).code).toBe('NOTIFICATION_REJECTED')
  return error as NotificationRejectedError
}

describe('snsVerifier', () => {
  it('builds SNS canonical strings: Subject only when present, subscription fields in their order', () => {
    expect(
      snsStringToSign({
        Type: 'Notification',
        Message: 'm',
        MessageId: 'i',
        Timestamp: 't',
        TopicArn: 'a',
      }),
    ).toBe('Message\nm\nMessageId\ni\nTimestamp\nt\nTopicArn\na\nType\nNotification\n')
    expect(
      snsStringToSign({
        Type: 'Notification',
        Message: 'm',
        MessageId: 'i',
        Subject: 's',
        Timestamp: 't',
        TopicArn: 'a',
      }),
    ).toBe('Message\nm\nMessageId\ni\nSubject\ns\nTimestamp\nt\nTopicArn\na\nType\nNotification\n')
    expect(
      snsStringToSign({
        Type: 'SubscriptionConfirmation',
        Message: 'm',
        MessageId: 'i',
        SubscribeURL: 'u',
        Timestamp: 't',
        Token: 'k',
        TopicArn: 'a',
        Subject: 'ignored',
      }),
    ).toBe(
      'Message\nm\nMessageId\ni\nSubscribeURL\nu\nTimestamp\nt\nToken\nk\nTopicArn\na\nType\nSubscriptionConfirmation\n',
    )
  })

  it('accepts signature versions 1 and 2, from a string or an object body, and caches the certificate', async () => {
    const v = verifier()
    const one = sns.notification({
      topicArn: TOPIC,
      message: '{"state":"COMPLETED"}',
      subject: 'done',
    })
    const two = sns.notification({ topicArn: TOPIC, message: 'second', version: '2' })
    const first = await v.verify(JSON.stringify(one))
    expect(first).toMatchObject({
      Type: 'Notification',
      TopicArn: TOPIC,
      Message: '{"state":"COMPLETED"}',
      Subject: 'done',
    })
    expect((await v.verify(two)).Message).toBe('second')
    expect(sns.fetched).toEqual([sns.certUrl])
    expect(sns.served.filter((path) => path.endsWith('.pem'))).toHaveLength(1)
  })

  it('accepts a certificate from an sns.<region>.amazonaws.com host by default', async () => {
    const calls: string[] = []
    const v = snsVerifier({
      topicArns: [TOPIC],
      fetch: async (url) => {
        calls.push(url)
        return { ok: true, status: 200, text: async () => sns.certPem }
      },
    })
    for (const host of ['sns.us-east-1.amazonaws.com', 'sns.cn-north-1.amazonaws.com.cn']) {
      const certUrl = `https://${host}/SimpleNotificationService-abc.pem`
      const message = sns.sign(
        {
          Type: 'Notification',
          MessageId: `m-${host}`,
          TopicArn: TOPIC,
          Message: 'x',
          Timestamp: new Date().toISOString(),
        },
        { certUrl },
      )
      await v.verify(message)
    }
    expect(calls).toEqual([
      'https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem',
      'https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem',
    ])
  })

  it('rejects an unsigned message without fetching anything', async () => {
    const message = sns.notification({ topicArn: TOPIC, message: 'x' })
    delete message.Signature
    expect((await rejection(verifier().verify(message))).reason).toBe('UNSIGNED')
    const noVersion = sns.notification({ topicArn: TOPIC, message: 'x' })
    delete noVersion.SignatureVersion
    expect((await rejection(verifier().verify(noVersion))).reason).toBe('UNSIGNED')
    expect(sns.fetched).toEqual([])
  })

  it('rejects a signature made by another key, a tampered message and an unknown version', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    })
    const forged = sns.sign(
      {
        Type: 'Notification',
        MessageId: 'forged',
        TopicArn: TOPIC,
        Message: 'x',
        Timestamp: new Date().toISOString(),
      },
      { keyPem: other as string },
    )
    expect((await rejection(verifier().verify(forged))).reason).toBe('BAD_SIGNATURE')

    const tampered = {
      ...sns.notification({ topicArn: TOPIC, message: '{"state":"PROGRESSING"}' }),
    }
    tampered.Message = '{"state":"COMPLETED"}'
    expect((await rejection(verifier().verify(tampered))).reason).toBe('BAD_SIGNATURE')

    const addedSubject = {
      ...sns.notification({ topicArn: TOPIC, message: 'x' }),
      Subject: 'added',
    }
    expect((await rejection(verifier().verify(addedSubject))).reason).toBe('BAD_SIGNATURE')

    const v3 = { ...sns.notification({ topicArn: TOPIC, message: 'x' }), SignatureVersion: '3' }
    expect((await rejection(verifier().verify(v3))).reason).toBe('BAD_SIGNATURE')
  })

  it('rejects certificate URLs off a trusted https SNS host, fetching nothing', async () => {
    const strict = snsVerifier({ topicArns: [TOPIC], fetch: sns.fetch })
    const urls = [
      'https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-abc.pem',
      'http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem',
      'https://sns.us-east-1.amazonaws.com@evil.com/SimpleNotificationService-abc.pem',
      'https://evil.com/sns.us-east-1.amazonaws.com/cert.pem',
      'https://evil.com/?sns.us-east-1.amazonaws.com',
      'https://xsns.us-east-1.amazonaws.com/cert.pem',
      'file:///etc/ssl/cert.pem',
      'not a url',
    ]
    for (const certUrl of urls) {
      const message = sns.sign(
        {
          Type: 'Notification',
          MessageId: certUrl,
          TopicArn: TOPIC,
          Message: 'x',
          Timestamp: new Date().toISOString(),
        },
        { certUrl },
      )
      expect((await rejection(strict.verify(message))).reason, certUrl).toBe('UNTRUSTED_CERT_URL')
    }
    // Over http to a listener that would serve the right certificate: still refused, never asked.
    const overHttp = sns.sign(
      {
        Type: 'Notification',
        MessageId: 'http',
        TopicArn: TOPIC,
        Message: 'x',
        Timestamp: new Date().toISOString(),
      },
      { certUrl: plainHttpUrl },
    )
    expect((await rejection(verifier().verify(overHttp))).reason).toBe('UNTRUSTED_CERT_URL')
    expect(sns.fetched).toEqual([])
    expect(plainHttpHits).toBe(0)
  })

  it('rejects a topic that is not allowed, before fetching the certificate', async () => {
    const message = sns.notification({
      topicArn: 'arn:aws:sns:us-east-1:999999999999:other',
      message: 'x',
    })
    expect((await rejection(verifier().verify(message))).reason).toBe('UNKNOWN_TOPIC')
    expect(sns.fetched).toEqual([])
  })

  it('rejects a message older than maxAgeMs, or from the future', async () => {
    const old = sns.notification({
      topicArn: TOPIC,
      message: 'x',
      timestamp: new Date(Date.now() - 61_000),
    })
    expect((await rejection(verifier({ maxAgeMs: 60_000 }).verify(old))).reason).toBe('TOO_OLD')
    const future = sns.notification({
      topicArn: TOPIC,
      message: 'x',
      timestamp: new Date(Date.now() + 3_600_000),
    })
    expect((await rejection(verifier().verify(future))).reason).toBe('TOO_OLD')
    expect(sns.fetched).toEqual([])
    const fresh = sns.notification({
      topicArn: TOPIC,
      message: 'x',
      timestamp: new Date(Date.now() - 30_000),
    })
    await expect(verifier({ maxAgeMs: 60_000 }).verify(fresh)).resolves.toMatchObject({
      Message: 'x',
    })
  })

  it('rejects a replayed MessageId, and only a verified message takes a MessageId', async () => {
    const v = verifier()
    const message = sns.notification({ topicArn: TOPIC, message: 'x' })
    // A forged copy with the same id does not use the id up.
    const forged = { ...message, Message: 'forged' }
    expect((await rejection(v.verify(forged))).reason).toBe('BAD_SIGNATURE')
    await v.verify(message)
    expect((await rejection(v.verify(message))).reason).toBe('REPLAYED')
    expect((await rejection(v.verify(JSON.stringify(message)))).reason).toBe('REPLAYED')
  })

  it('uses a pluggable dedup store', async () => {
    const claimed: string[] = []
    const v = verifier({
      dedup: {
        async claim(id) {
          if (claimed.includes(id)) return false
          claimed.push(id)
          return true
        },
      },
    })
    const message = sns.notification({ topicArn: TOPIC, message: 'x', messageId: 'fixed-id' })
    await v.verify(message)
    expect(claimed).toEqual(['fixed-id'])
    // Another verifier sharing the store (another process) sees the replay.
    const second = verifier({ dedup: { claim: (id) => !claimed.includes(id) } })
    expect((await rejection(second.verify(message))).reason).toBe('REPLAYED')
  })

  it('refuses while the certificate cannot be fetched, and does not cache the failure', async () => {
    let calls = 0
    const v = verifier({
      fetch: async (url, init) => {
        calls++
        if (calls === 1) return { ok: false, status: 503, text: async () => 'busy' }
        return sns.fetch(url, init)
      },
    })
    const message = sns.notification({ topicArn: TOPIC, message: 'x' })
    expect((await rejection(v.verify(message))).reason).toBe('CERT_UNAVAILABLE')
    // The MessageId was not used up: SNS's retry of the same message goes through.
    await expect(v.verify(message)).resolves.toMatchObject({ Message: 'x' })
    expect(calls).toBe(2)
  })

  it('rejects malformed bodies', async () => {
    for (const body of [
      'not json',
      '[]',
      42,
      null,
      { Type: 'Other' },
      { Type: 'Notification', Message: 'x' },
    ]) {
      expect((await rejection(verifier().verify(body))).reason).toBe('MALFORMED')
    }
    expect(sns.fetched).toEqual([])
  })

  it('confirms a subscription only after it verified, on a trusted host', async () => {
    const v = verifier()
    const confirmation = sns.subscriptionConfirmation({ topicArn: TOPIC, token: 'token-1' })
    const verified = await v.verify(confirmation)
    expect(sns.confirmed).toEqual([])
    await v.confirmSubscription(verified)
    expect(sns.confirmed).toEqual(['token-1'])

    // The same fields, not returned by verify(): refused without any request.
    const before = sns.fetched.length
    expect((await rejection(v.confirmSubscription({ ...verified }))).reason).toBe('UNSIGNED')
    expect(sns.fetched.length).toBe(before)

    const forged = { ...sns.subscriptionConfirmation({ topicArn: TOPIC, token: 'token-2' }) }
    forged.SubscribeURL = `${plainHttpUrl}?Action=ConfirmSubscription&Token=token-2`
    expect((await rejection(v.verify(forged))).reason).toBe('BAD_SIGNATURE')
    expect(plainHttpHits).toBe(0)
    expect(sns.confirmed).toEqual(['token-1'])
  })
})
