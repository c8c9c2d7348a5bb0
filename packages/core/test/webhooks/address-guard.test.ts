import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import {
  type AddressResolver,
  addressRefusal,
  ConfigurationError,
  checkWebhookUrl,
  resolveWebhookOptions,
  resolveWebhookTarget,
  sendWebhook,
  WebhookUrlError,
} from '../../src/index.ts'

const SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`

/** A resolver answering from a table, as a DNS server an attacker controls would. */
function resolverOf(table: Record<string, string[]>): AddressResolver {
  return async (hostname) => {
    const answers = table[hostname]
    if (!answers)
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' })
    return answers.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }))
  }
}

describe('addressRefusal', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'linkLocal'],
    ['100.64.0.1', 'carrierGradeNat'],
    ['0.0.0.0', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fe80::1', 'linkLocal'],
    ['fd00::1', 'uniqueLocal'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:169.254.169.254', 'linkLocal'],
    // IPv4-compatible (deprecated ::/96): a host with a sit tunnel routes it to the IPv4 address.
    ['::7f00:1', 'ipv4Compatible'],
    ['::a00:1', 'ipv4Compatible'],
    ['::8.8.8.8', 'ipv4Compatible'],
    ['64:ff9b::7f00:1', 'rfc6052'],
    ['2002:7f00:1::', '6to4'],
  ])('refuses %s (%s)', (address, range) => {
    expect(addressRefusal(address)).toBe(range)
  })

  it.each(['93.184.215.14', '8.8.8.8', '2606:4700:4700::1111'])(
    'accepts the public %s',
    (address) => {
      expect(addressRefusal(address)).toBeNull()
    },
  )
})

describe('checkWebhookUrl (configuration time, no DNS)', () => {
  it.each([
    'http://127.0.0.1/hook',
    'http://10.0.0.5:8080/hook',
    'http://169.254.169.254/latest/meta-data',
    'http://[::1]:3000/hook',
    'http://[::ffff:7f00:1]/hook',
    'http://[::127.0.0.1]/hook',
    'http://0.0.0.0/',
    'http://0x7f.1/hook',
    'http://localhost:3000/hook',
    'http://api.localhost/hook',
  ])('refuses %s', (url) => {
    expect(() => checkWebhookUrl(url)).toThrow(WebhookUrlError)
  })

  it('refuses other schemes and credentials, allowed or not', () => {
    for (const allowPrivateAddresses of [false, true]) {
      expect(() => checkWebhookUrl('file:///etc/passwd', { allowPrivateAddresses })).toThrow(
        /http or https/,
      )
      expect(() =>
        checkWebhookUrl('https://user:pw@example.com/', { allowPrivateAddresses }),
      ).toThrow(/password/)
      expect(() => checkWebhookUrl('not a url', { allowPrivateAddresses })).toThrow(WebhookUrlError)
    }
  })

  it('accepts a private address when the app allows it', () => {
    expect(checkWebhookUrl('http://127.0.0.1:9/hook', { allowPrivateAddresses: true }).port).toBe(
      '9',
    )
    expect(checkWebhookUrl('https://hooks.example.com/x').hostname).toBe('hooks.example.com')
  })

  it('makes a configuration error of a refused endpoint, naming it', () => {
    expect(() =>
      resolveWebhookOptions({ endpoints: [{ url: 'http://10.0.0.1/', secret: SECRET }] }),
    ).toThrow(ConfigurationError)
    expect(() =>
      resolveWebhookOptions({
        endpoints: [{ url: 'https://example.com/', secret: 'not-a-secret' }],
      }),
    ).toThrow(/endpoints\[0\]\.secret/)
    expect(() =>
      resolveWebhookOptions({
        endpoints: [{ url: 'https://example.com/', secret: SECRET, events: ['job.nope' as never] }],
      }),
    ).toThrow(/unknown event type/)
  })
})

describe('resolveWebhookOptions deadlines', () => {
  const endpoints = [{ url: 'https://example.com/', secret: SECRET }]

  it('bounds an attempt below the webhook queue’s expiry, so an attempt never runs twice at once', () => {
    expect(() => resolveWebhookOptions({ endpoints, timeoutMs: 300_000 })).toThrow(/timeoutMs/)
    expect(resolveWebhookOptions({ endpoints, timeoutMs: 60_000 }).timeoutMs).toBe(60_000)
  })
})

describe('resolveWebhookOptions retention', () => {
  const endpoints = [{ url: 'https://example.com/', secret: SECRET }]

  it('keeps ended deliveries 30 days unless told, Infinity for ever, a bounded batch per sweep', () => {
    const defaults = resolveWebhookOptions({ endpoints })
    expect(defaults).toMatchObject({ retainEndedMs: 30 * 86_400_000, pruneBatchSize: 1000 })
    const forever = resolveWebhookOptions({ endpoints, retainEndedMs: Number.POSITIVE_INFINITY })
    expect(forever.retainEndedMs).toBe(Number.POSITIVE_INFINITY)
    expect(() => resolveWebhookOptions({ endpoints, retainEndedMs: 0 })).toThrow(
      'webhooks: option "retainEndedMs" must be a positive integer or Infinity',
    )
    for (const pruneBatchSize of [0, 10_001, 1.5]) {
      expect(() => resolveWebhookOptions({ endpoints, pruneBatchSize })).toThrow(/pruneBatchSize/)
    }
  })
})

describe('resolveWebhookOptions connect timeout', () => {
  const endpoints = [{ url: 'https://example.com/', secret: SECRET }]

  it('refuses a connect timeout longer than the whole attempt', () => {
    expect(() => resolveWebhookOptions({ endpoints, connectTimeoutMs: 20_000 })).toThrow(
      /connectTimeoutMs/,
    )
  })
})

describe('resolveWebhookTarget (every delivery)', () => {
  const resolve = resolverOf({
    'internal.test': ['10.0.0.7'],
    'metadata.test': ['169.254.169.254'],
    'mixed.test': ['93.184.215.14', '127.0.0.1'],
    'six.test': ['::1'],
    'public.test': ['93.184.215.14'],
  })

  it.each(['internal.test', 'metadata.test', 'mixed.test', 'six.test'])(
    'refuses a name resolving to a non-public address (%s)',
    async (host) => {
      await expect(
        resolveWebhookTarget(new URL(`http://${host}/hook`), { resolve }),
      ).rejects.toThrow(/not a public address/)
    },
  )

  it('refuses localhost through the real resolver', async () => {
    await expect(resolveWebhookTarget(new URL('http://localhost:1/hook'))).rejects.toThrow(
      WebhookUrlError,
    )
  })

  it('pins the checked answer, and allows private answers only when told', async () => {
    expect(await resolveWebhookTarget(new URL('http://public.test/'), { resolve })).toEqual({
      address: '93.184.215.14',
      family: 4,
    })
    expect(
      await resolveWebhookTarget(new URL('http://internal.test/'), {
        resolve,
        allowPrivateAddresses: true,
      }),
    ).toEqual({ address: '10.0.0.7', family: 4 })
  })
})

describe('sendWebhook', () => {
  it('never reaches a receiver on a refused address, and connects to the pinned one', async () => {
    let hits = 0
    const server = createServer((_req, res) => {
      hits++
      res.writeHead(302, { location: 'http://169.254.169.254/' }).end()
    })
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
    const { port } = server.address() as AddressInfo
    try {
      const request = { secret: SECRET, id: 'msg_1', payload: '{}', at: new Date() }
      const limits = { connectTimeoutMs: 2000, timeoutMs: 5000, maxResponseBytes: 1024 }
      // A name the resolver turns into the receiver's loopback address.
      const resolve = resolverOf({ 'receiver.test': ['127.0.0.1'] })
      const refused = await sendWebhook(
        { ...request, url: new URL(`http://receiver.test:${port}/hook`) },
        { ...limits, allowPrivateAddresses: false, resolve },
      )
      expect(refused).toEqual({ status: null, error: expect.stringMatching(/loopback/) })
      expect(hits).toBe(0)

      // Allowed: the connection goes to the resolver's answer, and the redirect is not followed.
      const allowed = await sendWebhook(
        { ...request, url: new URL(`http://receiver.test:${port}/hook`) },
        { ...limits, allowPrivateAddresses: true, resolve },
      )
      expect(allowed).toEqual({ status: 302, error: null })
      expect(hits).toBe(1)
    } finally {
      await new Promise((done) => server.close(done))
    }
  })
})

describe('sendWebhook deadlines', () => {
  it('ends an attempt whose DNS answer never comes at the total timeout', async () => {
    const never: AddressResolver = () => new Promise(() => {})
    const outcome = await sendWebhook(
      {
        url: new URL('http://slow.test/hook'),
        secret: SECRET,
        id: 'msg_2',
        payload: '{}',
        at: new Date(),
      },
      {
        allowPrivateAddresses: false,
        connectTimeoutMs: 50,
        timeoutMs: 100,
        maxResponseBytes: 10,
        resolve: never,
      },
    )
    expect(outcome).toEqual({ status: null, error: 'timed out after 100 ms' })
  })

  it('reads a bounded part of a large answer and closes the connection', async () => {
    let chunksSent = 0
    const server = createServer((_req, res) => {
      res.writeHead(200)
      // Far more than the bound; the sender stops reading and hangs up.
      const chunk = Buffer.alloc(64 * 1024, 120)
      let sent = 0
      const pump = () => {
        while (sent < 64 && res.write(chunk)) chunksSent = ++sent
        if (sent < 64) res.once('drain', pump)
        else res.end()
      }
      pump()
    })
    const hungUp = new Promise<number>((resolve) => {
      server.once('request', (_req, res) => res.once('close', () => resolve(chunksSent)))
    })
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done))
    const { port } = server.address() as AddressInfo
    try {
      const outcome = await sendWebhook(
        {
          url: new URL(`http://127.0.0.1:${port}/`),
          secret: SECRET,
          id: 'msg_3',
          payload: '{}',
          at: new Date(),
        },
        {
          allowPrivateAddresses: true,
          connectTimeoutMs: 2000,
          timeoutMs: 10_000,
          maxResponseBytes: 1024,
        },
      )
      expect(outcome).toEqual({ status: 200, error: null })
      // Hung up long before the 4 MiB were sent.
      expect(await hungUp).toBeLessThan(64)
    } finally {
      server.closeAllConnections()
      await new Promise((done) => server.close(done))
    }
  })
})
