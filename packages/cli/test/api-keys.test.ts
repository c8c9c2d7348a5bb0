import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { filesUnder } from '@transcodekit/core/testing'
import { describe, expect, it } from 'vitest'
import { apiKeyOwner, parseApiKeys } from '../src/api-keys.ts'
import { isLoopback, loadConfig } from '../src/config.ts'
import { configProblems, injectedServer, startServer } from './server-process.ts'

const ALICE_KEY = 'alice-key-0123456789abcdef'
const BOB_KEY = 'bob-key-0123456789abcdef:x'
const API_KEYS = `${ALICE_KEY}:alice, ${BOB_KEY}:bob`
const ALICE = { authorization: `Bearer ${ALICE_KEY}` }
const BOB = { authorization: `Bearer ${BOB_KEY}` }

describe('API_KEYS, AUTH and HOST', () => {
  it('reads key:owner pairs (the owner after the last colon), and several keys per owner', () => {
    const config = loadConfig({ API_KEYS: `${API_KEYS},another-alice-key-0123:alice` })
    expect([...config.apiKeys!]).toEqual([
      [ALICE_KEY, 'alice'],
      [BOB_KEY, 'bob'],
      ['another-alice-key-0123', 'alice'],
    ])
    expect(loadConfig({}).apiKeys).toBeNull()
  })

  it('names bad pairs by position, never printing a key', () => {
    const secret = 'short-secret'
    const problems = configProblems({
      API_KEYS: `${secret}:alice,no-owner-here-0123456789,${ALICE_KEY}:bad owner,${ALICE_KEY}:a,${ALICE_KEY}:b`,
    })
    expect(problems).toEqual([
      expect.stringMatching(/^API_KEYS: pair 1: a key has 16 to 256/),
      'API_KEYS: pair 2 must be key:owner',
      expect.stringMatching(/^API_KEYS: pair 3: the owner/),
      'API_KEYS: pair 5: this key is already given to an owner',
    ])
    expect(problems.join('\n')).not.toContain(secret)
    expect(problems.join('\n')).not.toContain(ALICE_KEY)
    expect(configProblems({ API_KEYS: ' , ' })).toEqual([
      'API_KEYS is set but holds no key:owner pair',
    ])
  })

  it('listens on this machine only without keys, unless AUTH=none says otherwise on purpose', () => {
    expect(loadConfig({}).host).toBe('localhost')
    for (const host of ['localhost', '127.0.0.1', '127.1.2.3', '::1', '[::1]']) {
      expect(isLoopback(host), host).toBe(true)
      expect(loadConfig({ HOST: host }).host).toBe(host)
    }
    for (const host of ['0.0.0.0', '::', '192.168.1.10', 'media.example.com']) {
      expect(isLoopback(host), host).toBe(false)
      expect(configProblems({ HOST: host })).toEqual([
        `HOST=${host} would open the API to the network with no access control: set API_KEYS (key:owner pairs), or AUTH=none to do so on purpose`,
      ])
      expect(loadConfig({ HOST: host, AUTH: 'none' }).host).toBe(host)
      expect(loadConfig({ HOST: host, API_KEYS }).apiKeys?.size).toBe(2)
    }
    expect(configProblems({ AUTH: 'off' })).toEqual(['AUTH must be none or unset (got "off")'])
    expect(configProblems({ AUTH: 'none', API_KEYS })).toEqual([
      'API_KEYS and AUTH=none contradict each other: set one of them',
    ])
  })

  it('reads the rate limits and the job cap, with defaults for a small server', () => {
    expect(loadConfig({})).toMatchObject({
      uploadsPerMinute: 30,
      jobActionsPerMinute: 60,
      maxJobsPerOwner: 10,
    })
    expect(
      loadConfig({ RATE_LIMIT_UPLOADS: '0', RATE_LIMIT_JOB_ACTIONS: '5', MAX_JOBS_PER_OWNER: '2' }),
    ).toMatchObject({ uploadsPerMinute: 0, jobActionsPerMinute: 5, maxJobsPerOwner: 2 })
    expect(configProblems({ RATE_LIMIT_UPLOADS: '-1', MAX_JOBS_PER_OWNER: 'many' })).toHaveLength(2)
  })

  it('finds the owner of a bearer key, and no one for anything else', () => {
    const owner = apiKeyOwner(parseApiKeys(API_KEYS, []))
    const of = (authorization?: string) =>
      owner({ headers: authorization === undefined ? {} : { authorization } } as never)
    expect(of(`Bearer ${ALICE_KEY}`)).toBe('alice')
    expect(of(`bearer  ${BOB_KEY}`)).toBe('bob')
    for (const header of [
      undefined,
      '',
      ALICE_KEY,
      `Basic ${ALICE_KEY}`,
      `Bearer ${ALICE_KEY}x`,
      `Bearer ${ALICE_KEY.slice(0, -1)}`,
      `Bearer ${ALICE_KEY} ${BOB_KEY}`,
      'Bearer ',
    ]) {
      expect(of(header), String(header)).toBeNull()
    }
  })

  it('refuses to start on a network address without API_KEYS, with a readable message', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'transcodekit-auth-'))
    try {
      const failure = await startServer(
        { DATA_DIR: dir, DATABASE_URL: 'memory://', HOST: '0.0.0.0' },
        20_000,
      ).catch((error: Error) => error)
      expect(failure).toBeInstanceOf(Error)
      expect((failure as Error).message).toContain('exited with 1')
      expect((failure as Error).message).toContain('HOST=0.0.0.0 would open the API')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('the server with API keys', () => {
  const server = injectedServer('mp3')
  const start = (env: Record<string, string>) => server.start({ WORKER: 'false', ...env })
  const upload = (headers: Record<string, string>) => server.upload('wav', headers)

  it('wants a key on every API route; the page, its config and the docs stay public', async () => {
    await start({ API_KEYS })
    for (const [method, url] of [
      ['GET', '/api/assets'],
      ['GET', '/api/jobs'],
      ['GET', '/api/presets'],
      ['GET', '/api/jobs/00000000-0000-4000-8000-000000000000'],
    ] as const) {
      for (const headers of [{}, { authorization: 'Bearer not-a-key-0123456789' }]) {
        const res = await server.app.inject({ method, url, headers })
        expect(res.statusCode, `${method} ${url}`).toBe(401)
        expect(res.json().code).toBe('TRANSCODEKIT_UNAUTHENTICATED')
      }
    }
    const refused = await upload({})
    expect(refused.statusCode).toBe(401)
    expect((await server.app.inject({ url: '/api/presets', headers: ALICE })).statusCode).toBe(200)
    expect((await server.app.inject({ url: '/' })).statusCode).toBe(200)
    expect((await server.app.inject({ url: '/config.json' })).json()).toMatchObject({
      auth: 'api-key',
    })
    const document = (await server.app.inject({ url: '/openapi.json' })).json()
    expect(document.components.securitySchemes).toEqual({
      bearerAuth: { type: 'http', scheme: 'bearer' },
    })
  })

  it("keeps each key's owner to its own assets and jobs", async () => {
    await start({ API_KEYS })
    const made = await upload(ALICE)
    expect(made.statusCode).toBe(201)
    const { asset, job } = made.json()
    expect((await server.app.inject({ url: `/api/jobs/${job.id}`, headers: BOB })).statusCode).toBe(
      404,
    )
    expect(
      (await server.app.inject({ url: `/api/assets/${asset.id}`, headers: BOB })).statusCode,
    ).toBe(404)
    expect((await server.app.inject({ url: '/api/assets', headers: BOB })).json().items).toEqual([])
    const mine = await server.app.inject({ url: '/api/assets', headers: ALICE })
    expect(mine.json().items.map((a: { id: string }) => a.id)).toEqual([asset.id])
    expect((await server.services.service.getJob(job.id)).owner).toBe('alice')
  })

  it('limits uploads per owner and minute: 429 TRANSCODEKIT_RATE_LIMITED, nothing stored', async () => {
    const { config } = await start({ API_KEYS, RATE_LIMIT_UPLOADS: '2', MAX_JOBS_PER_OWNER: '0' })
    expect((await upload(ALICE)).statusCode).toBe(201)
    expect((await upload(ALICE)).statusCode).toBe(201)
    const before = await filesUnder(config.dataDir)
    const limited = await upload(ALICE)
    expect(limited.statusCode).toBe(429)
    expect(limited.json()).toMatchObject({ code: 'TRANSCODEKIT_RATE_LIMITED' })
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0)
    expect(await filesUnder(config.dataDir)).toEqual(before)
    expect((await server.services.service.listAssets({ owner: 'alice' })).items).toHaveLength(2)
    // Per owner: Bob has his own budget.
    expect((await upload(BOB)).statusCode).toBe(201)
  })

  it('limits job actions per owner and minute', async () => {
    await start({ API_KEYS, RATE_LIMIT_JOB_ACTIONS: '1', MAX_JOBS_PER_OWNER: '0' })
    const first = (await upload(ALICE)).json().job
    const second = (await upload(ALICE)).json().job
    const cancel = (id: string, headers: Record<string, string>) =>
      server.app.inject({ method: 'POST', url: `/api/jobs/${id}/cancel`, headers })
    expect((await cancel(first.id, ALICE)).statusCode).toBe(200)
    const limited = await cancel(second.id, ALICE)
    expect(limited.statusCode).toBe(429)
    expect(limited.json().code).toBe('TRANSCODEKIT_RATE_LIMITED')
    expect((await server.services.service.getJob(second.id)).state).toBe('submitted')
    const bobs = (await upload(BOB)).json().job
    expect((await cancel(bobs.id, BOB)).statusCode).toBe(200)
  })

  it('limits webhook redeliveries per owner and minute, as a job action', async () => {
    await start({
      API_KEYS,
      RATE_LIMIT_JOB_ACTIONS: '1',
      WEBHOOK_URL: 'https://hooks.example.com/tk',
      WEBHOOK_SECRET: `whsec_${Buffer.alloc(32, 1).toString('base64')}`,
    })
    const redeliver = (headers: Record<string, string>) =>
      server.app.inject({
        method: 'POST',
        url: `/api/webhooks/deliveries/msg_${'0'.repeat(32)}/redeliver`,
        headers,
      })
    expect((await redeliver(ALICE)).statusCode).toBe(404)
    const limited = await redeliver(ALICE)
    expect(limited.statusCode).toBe(429)
    expect(limited.json().code).toBe('TRANSCODEKIT_RATE_LIMITED')
    expect((await redeliver(BOB)).statusCode).toBe(404)
  })

  it("keeps DATA_DIR for the server's user only: folders 0700, files 0600", async () => {
    const { config } = await start({ API_KEYS })
    expect((await upload(ALICE)).statusCode).toBe(201)
    const entries = await readdir(config.dataDir, { recursive: true, withFileTypes: true })
    expect(entries.filter((entry) => entry.isFile()).length).toBeGreaterThan(1)
    expect((await stat(config.dataDir)).mode & 0o777).toBe(0o700)
    for (const entry of entries) {
      const path = join(entry.parentPath, entry.name)
      expect((await stat(path)).mode & 0o777, path).toBe(entry.isDirectory() ? 0o700 : 0o600)
    }
  })

  it('caps the jobs one owner has waiting or running: 429 TRANSCODEKIT_TOO_MANY_JOBS', async () => {
    await start({ API_KEYS, MAX_JOBS_PER_OWNER: '1' })
    expect((await upload(ALICE)).statusCode).toBe(201)
    const refused = await upload(ALICE)
    expect(refused.statusCode).toBe(429)
    expect(refused.json().code).toBe('TRANSCODEKIT_TOO_MANY_JOBS')
    expect((await upload(BOB)).statusCode).toBe(201)
  })

  it('answers only its own Host names without API_KEYS (DNS rebinding)', async () => {
    await start({ ALLOWED_HOSTS: 'media.example.com' })
    const list = (host: string) => server.app.inject({ url: '/api/assets', headers: { host } })
    for (const host of ['localhost:4997', '127.0.0.1', '[::1]:4997', 'MEDIA.example.com:8080']) {
      expect((await list(host)).statusCode, host).toBe(200)
    }
    for (const host of ['rebind.attacker.example:4997', 'localhost.attacker.example']) {
      const refused = await list(host)
      expect(refused.statusCode, host).toBe(403)
      expect(refused.json().code).toBe('TRANSCODEKIT_HOST_NOT_ALLOWED')
    }
    expect(
      (await server.app.inject({ url: '/', headers: { host: 'evil.example' } })).statusCode,
    ).toBe(403)
    expect(configProblems({ ALLOWED_HOSTS: 'http://x.example,ok.example,a.example:80' })).toEqual([
      'ALLOWED_HOSTS: "http://x.example" is not a host name (no port, no scheme)',
      'ALLOWED_HOSTS: "a.example:80" is not a host name (no port, no scheme)',
    ])
  })

  it('refuses changes from another site without API_KEYS (CSRF), and stores nothing', async () => {
    const { config } = await start({})
    const before = await filesUnder(config.dataDir)
    for (const headers of [
      { origin: 'https://evil.example' },
      { origin: 'http://localhost:4997' },
      { origin: 'null' },
      { 'sec-fetch-site': 'cross-site' },
    ]) {
      const refused = await upload({ host: 'localhost:80', ...headers })
      expect(refused.statusCode, JSON.stringify(headers)).toBe(403)
      expect(refused.json().code).toBe('TRANSCODEKIT_CROSS_SITE_REQUEST')
    }
    expect(await filesUnder(config.dataDir)).toEqual(before)
    const page = { host: 'localhost:4997', origin: 'http://localhost:4997' }
    expect((await upload({ ...page, 'sec-fetch-site': 'same-origin' })).statusCode).toBe(201)
    expect((await upload({})).statusCode).toBe(201)
    // Reading is not a change: a cross-site GET gets nothing it could read anyway (no CORS).
    const read = await server.app.inject({
      url: '/api/assets',
      headers: { origin: 'https://evil.example' },
    })
    expect(read.statusCode).toBe(200)
  })

  it('leaves Host and Origin to the bearer key with API_KEYS', async () => {
    await start({ API_KEYS })
    const headers = { ...ALICE, host: 'media.example.com', origin: 'https://app.example.com' }
    expect((await upload(headers)).statusCode).toBe(201)
  })

  it('stays open without API_KEYS: one owner for every request, with the same limits', async () => {
    await start({ MAX_JOBS_PER_OWNER: '1' })
    expect((await server.app.inject({ url: '/config.json' })).json()).toMatchObject({
      auth: 'none',
    })
    const made = await upload({})
    expect(made.statusCode).toBe(201)
    expect((await server.services.service.getJob(made.json().job.id)).owner).toBe('default')
    expect((await upload({})).json().code).toBe('TRANSCODEKIT_TOO_MANY_JOBS')
    const document = (await server.app.inject({ url: '/openapi.json' })).json()
    expect(document.components.securitySchemes).toBeUndefined()
  })
})
