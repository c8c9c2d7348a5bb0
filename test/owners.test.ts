import { randomUUID } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { memoryRepository, type Repository } from '../packages/core/src/index.ts'
import { makeTone } from '../packages/core/src/testing/index.ts'
import type { AuthorizeRequest } from '../packages/fastify/src/index.ts'
import {
  makeApp,
  multipart,
  parseEvents,
  type TestApp,
  waitFor,
} from '../packages/fastify/test/helpers.ts'
import { kyselyRepository } from '../packages/kysely/src/index.ts'
import { TestDatabase } from '../packages/kysely/test/support/test-databases.ts'

// Owner A against owner B on every route, on the memory repository and on PostgreSQL.

const KEYS: Record<string, string> = { 'key-alice': 'alice', 'key-bob': 'bob' }
const ALICE = { authorization: 'Bearer key-alice' }
const BOB = { authorization: 'Bearer key-bob' }

let fixtures: string
let tone: Buffer
beforeAll(async () => {
  fixtures = await mkdtemp(join(tmpdir(), 'transcodekit-owners-'))
  tone = await readFile(await makeTone(join(fixtures, 'tone.mp3'), { seconds: 1, format: 'mp3' }))
})
afterAll(async () => {
  await rm(fixtures, { recursive: true, force: true })
})

const postgres = new TestDatabase('postgres')
afterAll(() => postgres.close())

const backends: Record<string, () => Promise<Repository>> = {
  memory: async () => memoryRepository(),
  postgres: async () => {
    const { db, schema } = await postgres.schema()
    return kyselyRepository({ db, schema })
  },
}

describe.each(Object.keys(backends))('owners on the %s repository', (backend) => {
  let t: TestApp
  /** What the authorize hook was asked, and the answer it gives (allow all unless set). */
  let asked: AuthorizeRequest[]
  let policy: (request: AuthorizeRequest) => boolean
  afterEach(async () => {
    await t?.close()
  })

  async function start(options: { worker?: boolean; maxActiveJobsPerOwner?: number } = {}) {
    asked = []
    policy = () => true
    t = await makeApp({
      repository: await backends[backend]!(),
      worker: options.worker ?? false,
      maxActiveJobsPerOwner: options.maxActiveJobsPerOwner,
      owner: (request) => {
        const match = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')
        return match ? KEYS[match[1]!] : null
      },
      authorize: async (request) => {
        asked.push(request)
        return policy(request)
      },
    })
    return t
  }

  function upload(headers: Record<string, string>, key?: string) {
    const body = multipart([
      { name: 'presets', value: 'wav' },
      { name: 'file', filename: 'tone.mp3', contentType: 'audio/mpeg', data: tone },
    ])
    return t.app.inject({
      method: 'POST',
      url: '/uploads',
      headers: { ...body.headers, ...headers, ...(key ? { 'idempotency-key': key } : {}) },
      payload: body.payload,
    })
  }

  function call(method: 'GET' | 'POST' | 'DELETE', url: string, headers: Record<string, string>) {
    return t.app.inject({ method, url, headers })
  }

  /** A 404 answer with the id taken out, to compare with the answer for an id never made. */
  function shape(res: { statusCode: number; json(): unknown }, id: string) {
    const body = res.json() as Record<string, string>
    return { status: res.statusCode, ...body, message: body.message?.replace(id, '<id>') }
  }

  it('hides every resource of owner A from owner B: 404 as for one that does not exist', async () => {
    await start()
    const made = await upload(ALICE, 'same-key')
    expect(made.statusCode).toBe(201)
    const { asset, job } = made.json()

    // Listings: none of A's.
    for (const url of ['/assets', '/jobs', `/jobs?assetId=${asset.id}`]) {
      const res = await call('GET', url, BOB)
      expect(res.statusCode, url).toBe(200)
      expect(res.json().items, url).toEqual([])
    }
    // Each resource: the same answer as an id never made.
    const missing = randomUUID()
    const routes: Array<['GET' | 'POST' | 'DELETE', (id: string) => string, 'asset' | 'job']> = [
      ['GET', (id) => `/assets/${id}`, 'asset'],
      ['DELETE', (id) => `/assets/${id}`, 'asset'],
      ['GET', (id) => `/jobs/${id}`, 'job'],
      ['GET', (id) => `/jobs/${id}/events`, 'job'],
      ['POST', (id) => `/jobs/${id}/cancel`, 'job'],
      ['POST', (id) => `/jobs/${id}/retry`, 'job'],
    ]
    for (const [method, url, kind] of routes) {
      const id = kind === 'asset' ? asset.id : job.id
      const theirs = await call(method, url(id), BOB)
      const nobodys = await call(method, url(missing), BOB)
      expect(theirs.statusCode, `${method} ${url(id)}`).toBe(404)
      expect(shape(theirs, id), `${method} ${url(id)}`).toEqual(shape(nobodys, missing))
      expect(theirs.json().code).toBe('TRANSCODEKIT_NOT_FOUND')
    }
    // The hook is never asked about another owner's resource.
    expect(asked.filter((a) => a.owner === 'bob' && a.resource !== null)).toEqual([])

    // Nothing of A's changed.
    const still = await call('GET', `/jobs/${job.id}`, ALICE)
    expect(still.statusCode).toBe(200)
    expect(still.json().state).toBe('submitted')
    expect((await call('GET', `/assets/${asset.id}`, ALICE)).statusCode).toBe(200)

    // B's upload with A's idempotency key is B's own asset and job, never A's.
    const bobs = await upload(BOB, 'same-key')
    expect(bobs.statusCode).toBe(201)
    expect(bobs.json().job.id).not.toBe(job.id)
    expect(bobs.json().asset.id).not.toBe(asset.id)
    expect((await t.service.getJob(bobs.json().job.id)).owner).toBe('bob')
    expect((await t.service.getAsset(bobs.json().asset.id)).owner).toBe('bob')
    // A's retried upload still finds A's job.
    const again = await upload(ALICE, 'same-key')
    expect(again.json().job.id).toBe(job.id)
    // Each lists only its own.
    expect(
      (await call('GET', '/jobs', ALICE)).json().items.map((j: { id: string }) => j.id),
    ).toEqual([job.id])
    expect(
      (await call('GET', '/assets', BOB)).json().items.map((a: { id: string }) => a.id),
    ).toEqual([bobs.json().asset.id])
    expect(await t.service.listAssets({ limit: 100 })).toMatchObject({
      items: expect.arrayContaining([expect.objectContaining({ owner: 'alice', id: asset.id })]),
    })

    // The owner can do all of it.
    expect((await call('POST', `/jobs/${job.id}/cancel`, ALICE)).json().state).toBe('canceled')
    const events = await call('GET', `/jobs/${job.id}/events`, ALICE)
    expect(events.statusCode).toBe(200)
    expect(parseEvents(events.body).map((e) => JSON.parse(e.data).state)).toEqual(['canceled'])
    const retried = await call('POST', `/jobs/${job.id}/retry`, ALICE)
    expect(retried.statusCode).toBe(201)
    expect((await t.service.getJob(retried.json().id)).owner).toBe('alice')
    expect((await call('DELETE', `/assets/${asset.id}`, ALICE)).statusCode).toBe(204)
    // B's are untouched by all of that.
    expect((await call('GET', `/jobs/${bobs.json().job.id}`, BOB)).json().state).toBe('submitted')
  })

  it('refuses anonymous and unknown credentials with 401 before reading the body, leaving nothing', async () => {
    await start()
    for (const headers of [{}, { authorization: 'Bearer nope' }, { authorization: 'Basic eA==' }]) {
      for (const [method, url] of [
        ['GET', '/assets'],
        ['GET', '/jobs'],
        ['GET', `/jobs/${randomUUID()}`],
        ['GET', '/presets'],
        ['DELETE', `/assets/${randomUUID()}`],
      ] as const) {
        const res = await call(method, url, headers)
        expect(res.statusCode, `${method} ${url}`).toBe(401)
        expect(res.json()).toMatchObject({ code: 'TRANSCODEKIT_UNAUTHENTICATED' })
        expect(res.headers['www-authenticate']).toMatch(/^Bearer/)
      }
      const res = await upload(headers)
      expect(res.statusCode).toBe(401)
      expect(res.json().code).toBe('TRANSCODEKIT_UNAUTHENTICATED')
    }
    expect(await t.snapshot()).toEqual({ files: [], tmp: [], assets: [], jobs: [] })
    expect(asked).toEqual([])
  })

  it('asks the authorize hook about each action; its refusal on an own resource is a 403', async () => {
    await start()
    const { asset, job } = (await upload(ALICE)).json()
    expect(asked.map((a) => [a.owner, a.action, a.resource])).toEqual([
      ['alice', 'upload', null],
      ['alice', 'download', { type: 'job', job: expect.objectContaining({ id: job.id }) }],
    ])
    // Everything refused: each route answers 403 and changes nothing.
    policy = () => false
    for (const [method, url, action] of [
      ['GET', '/assets', 'list'],
      ['GET', '/jobs', 'list'],
      ['GET', `/assets/${asset.id}`, 'read'],
      ['DELETE', `/assets/${asset.id}`, 'delete'],
      ['GET', `/jobs/${job.id}`, 'read'],
      ['GET', `/jobs/${job.id}/events`, 'read'],
      ['POST', `/jobs/${job.id}/cancel`, 'cancel'],
      ['POST', `/jobs/${job.id}/retry`, 'retry'],
    ] as const) {
      asked = []
      const res = await call(method, url, ALICE)
      expect(res.statusCode, `${method} ${url}`).toBe(403)
      expect(res.json().code).toBe('TRANSCODEKIT_FORBIDDEN')
      expect(asked.map((a) => a.action)).toEqual([action])
      expect(asked[0]!.request.url).toBe(url)
      if (asked[0]!.resource) {
        const resource = asked[0]!.resource
        expect(resource.type === 'asset' ? resource.asset.id : resource.job.id).toBe(
          resource.type === 'asset' ? asset.id : job.id,
        )
      }
    }
    const refused = await upload(ALICE)
    expect(refused.statusCode).toBe(403)
    expect(refused.json().code).toBe('TRANSCODEKIT_FORBIDDEN')
    expect((await t.service.getJob(job.id)).state).toBe('submitted')
    expect((await t.snapshot()).assets).toEqual([asset.id])

    // Only deleting refused: the rest works.
    policy = ({ action }) => action !== 'delete'
    expect((await call('GET', `/assets/${asset.id}`, ALICE)).statusCode).toBe(200)
    expect((await call('DELETE', `/assets/${asset.id}`, ALICE)).statusCode).toBe(403)
    expect((await call('POST', `/jobs/${job.id}/cancel`, ALICE)).statusCode).toBe(200)
  })

  it('caps the jobs one owner has waiting or running: 429 before the body is stored', async () => {
    await start({ maxActiveJobsPerOwner: 2 })
    const first = (await upload(ALICE)).json().job
    expect((await upload(ALICE, 'second')).statusCode).toBe(201)
    const before = await t.snapshot()
    const refused = await upload(ALICE)
    expect(refused.statusCode).toBe(429)
    expect(refused.json()).toMatchObject({ code: 'TRANSCODEKIT_TOO_MANY_JOBS' })
    expect(await t.snapshot()).toEqual(before)
    // A retried request makes no new job: it gets its job, cap or not.
    const retried = await upload(ALICE, 'second')
    expect(retried.statusCode).toBe(201)
    expect(await t.snapshot()).toEqual(before)
    // Per owner: another owner is not held back.
    expect((await upload(BOB)).statusCode).toBe(201)
    // A job that ends makes room; retrying it takes the room again.
    expect((await call('POST', `/jobs/${first.id}/cancel`, ALICE)).statusCode).toBe(200)
    const third = await upload(ALICE)
    expect(third.statusCode).toBe(201)
    const retry = await call('POST', `/jobs/${first.id}/retry`, ALICE)
    expect(retry.statusCode).toBe(429)
    expect(retry.json().code).toBe('TRANSCODEKIT_TOO_MANY_JOBS')
    expect((await call('POST', `/jobs/${third.json().job.id}/cancel`, ALICE)).statusCode).toBe(200)
    expect((await call('POST', `/jobs/${first.id}/retry`, ALICE)).statusCode).toBe(201)
  })

  it('gives output URLs only where the hook allows download', async () => {
    await start({ worker: true })
    const { job } = (await upload(ALICE)).json()
    const done = await waitFor(
      async () => {
        const current = (await call('GET', `/jobs/${job.id}`, ALICE)).json()
        return current.state === 'complete' ? current : null
      },
      30_000,
      'the job to complete',
    )
    expect(done.outputs[0].url).toEqual(expect.any(String))
    policy = ({ action }) => action !== 'download'
    const hidden = await call('GET', `/jobs/${job.id}`, ALICE)
    expect(hidden.statusCode).toBe(200)
    expect(done.outputs[0].downloadUrl).toEqual(expect.any(String))
    expect(
      hidden
        .json()
        .outputs.map((o: { url: string | null; downloadUrl: string | null }) => [
          o.url,
          o.downloadUrl,
        ]),
    ).toEqual([[null, null]])
    const listed = (await call('GET', '/jobs', ALICE)).json().items
    expect(listed[0].outputs[0]).toMatchObject({ url: null, downloadUrl: null })
    const events = parseEvents((await call('GET', `/jobs/${job.id}/events`, ALICE)).body)
    expect(JSON.parse(events.at(-1)!.data).outputs[0]).toMatchObject({
      url: null,
      downloadUrl: null,
    })
    // The signed URL handed out before still plays: the signature is the file's authorization.
    expect((await t.app.inject({ url: done.outputs[0].url })).statusCode).toBe(200)
  })
})
