import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  createTranscoder,
  ffmpegEngine,
  localStorage,
  memoryRepository,
  type TranscodeService,
} from '@transcodekit/core'
import { makeTone } from '@transcodekit/core/testing'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { StrapiHost, StrapiLifecycleSubscriber } from '../src/index.ts'
import * as plugin from '../src/strapi-plugin.ts'

// The real Strapi app is exercised by test/strapi.test.ts; here the host is the smallest
// stand-in for Strapi (its database is a Map) so that the plugin's own paths that the app's
// config does not reach are covered: a service passed in, the merge into provider_metadata,
// and what destroy leaves alone.

interface FakeStrapi extends StrapiHost {
  rows: Map<number, Record<string, unknown>>
  logs: string[]
  subscribers: StrapiLifecycleSubscriber[]
  fire(action: 'afterCreate' | 'afterDelete', row: Record<string, unknown>): Promise<void>
}

function fakeStrapi(publicDir: string, config: Record<string, unknown>): FakeStrapi {
  const rows = new Map<number, Record<string, unknown>>()
  const logs: string[] = []
  const subscribers: StrapiLifecycleSubscriber[] = []
  return {
    rows,
    logs,
    subscribers,
    log: {
      debug() {},
      info() {},
      warn: (message) => logs.push(`warn: ${message}`),
      error: (message) => logs.push(`error: ${message}`),
    },
    config: {
      get: (path, defaultValue) => (path === 'plugin::transcodekit' ? config : defaultValue),
    },
    dirs: { static: { public: publicDir } },
    db: {
      lifecycles: {
        subscribe(subscriber) {
          subscribers.push(subscriber)
          return () => subscribers.splice(subscribers.indexOf(subscriber), 1)
        },
      },
      query: () => ({
        findOne: async ({ where }) => structuredClone(rows.get(where.id as number) ?? null),
        update: async ({ where, data }) => {
          const row = rows.get(where.id as number)
          if (row) Object.assign(row, structuredClone(data))
          return row
        },
      }),
    },
    plugin: () => ({ provider: {} }),
    async fire(action, row) {
      if (action === 'afterCreate') rows.set(row.id as number, row)
      else rows.delete(row.id as number)
      for (const subscriber of [...subscribers]) {
        if (subscriber.models && !subscriber.models.includes('plugin::upload.file')) continue
        await subscriber[action]?.({ action, model: { uid: 'plugin::upload.file' }, result: row })
      }
    },
  }
}

let dir: string
let publicDir: string
let service: TranscodeService

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-strapi-plugin-'))
  publicDir = join(dir, 'public')
  await mkdir(join(publicDir, 'uploads'), { recursive: true })
  service = createTranscoder({
    storage: localStorage({ root: join(dir, 'store'), baseUrl: '/media/' }),
    engine: ffmpegEngine({ tmpDir: join(dir, 'engine-tmp') }),
    repository: memoryRepository(),
    tmpDir: join(dir, 'spool'),
    pollIntervalMs: 50,
  })
})

afterEach(async () => {
  await service.close()
  await rm(dir, { recursive: true, force: true })
})

async function mp3Row(id: number, extra: Record<string, unknown> = {}) {
  const hash = `tone_${id}`
  await makeTone(join(publicDir, 'uploads', `${hash}.mp3`), { seconds: 1, format: 'mp3' })
  return {
    id,
    name: 'tone.mp3',
    hash,
    ext: '.mp3',
    mime: 'audio/mpeg',
    size: 16,
    url: `/uploads/${hash}.mp3`,
    provider: 'local',
    provider_metadata: null,
    ...extra,
  }
}

describe('the Strapi plugin server entry', () => {
  it('records the outputs on the entry, keeping what the upload provider stored there', async () => {
    const strapi = fakeStrapi(publicDir, {
      service,
      rules: [{ mime: 'audio/*', presets: ['mp3-128k'] }],
    })
    await plugin.bootstrap({ strapi })
    try {
      const transcoder = plugin.services.transcoder({ strapi })
      await strapi.fire(
        'afterCreate',
        await mp3Row(7, { provider_metadata: { public_id: 'kept' } }),
      )
      await transcoder.idle()
      const row = strapi.rows.get(7)!
      const metadata = row.provider_metadata as Record<string, unknown>
      expect(metadata.public_id).toBe('kept')
      const record = await transcoder.recordOf(7)
      expect(record?.state).toBe('complete')
      expect(record?.outputs).toEqual([
        expect.objectContaining({ preset: 'mp3-128k', mime: 'audio/mpeg', state: 'complete' }),
      ])
      expect(record?.outputs[0]?.url).toMatch(/^\/media\/.+\/mp3-128k\.mp3$/)
      expect(record?.outputs[0]?.size).toBeGreaterThan(1000)
      expect(transcoder.service).toBe(service)
    } finally {
      await plugin.destroy({ strapi })
    }
  })

  it('leaves a service it was given open on destroy, and stops listening', async () => {
    const strapi = fakeStrapi(publicDir, {
      service,
      rules: [{ mime: 'audio/*', presets: ['wav'] }],
    })
    await plugin.bootstrap({ strapi })
    expect(strapi.subscribers).toHaveLength(1)
    await plugin.destroy({ strapi })
    expect(strapi.subscribers).toHaveLength(0)
    expect(() => plugin.services.transcoder({ strapi }).service).toThrowError(
      /not been bootstrapped/,
    )

    // The service still runs jobs: the plugin did not close what it did not create.
    const row = await mp3Row(8)
    const { readFile } = await import('node:fs/promises')
    const { job } = await service.ingestAndTranscode(
      (async function* () {
        yield await readFile(join(publicDir, 'uploads', `${row.hash}.mp3`))
      })(),
      { presets: ['wav'] },
    )
    let last = job
    for await (const update of service.watch(job.id)) last = update
    expect(last.state).toBe('complete')
  })

  it('never throws from a hook, whatever the event carries', async () => {
    const strapi = fakeStrapi(publicDir, {
      service,
      rules: [{ mime: 'audio/*', presets: ['wav'] }],
    })
    await plugin.bootstrap({ strapi })
    try {
      const subscriber = strapi.subscribers[0]!
      for (const result of [undefined, null, 'text', { id: {} }, { id: 9, mime: 42 }]) {
        expect(() =>
          subscriber.afterCreate?.({
            action: 'afterCreate',
            model: { uid: 'plugin::upload.file' },
            result,
          }),
        ).not.toThrow()
        expect(() =>
          subscriber.afterDelete?.({
            action: 'afterDelete',
            model: { uid: 'plugin::upload.file' },
            result,
          }),
        ).not.toThrow()
      }
      await plugin.services.transcoder({ strapi }).idle()
      expect((await service.listJobs()).items).toHaveLength(0)
    } finally {
      await plugin.destroy({ strapi })
    }
  })

  it('records a permanent refusal on the entry without retrying', async () => {
    const strapi = fakeStrapi(publicDir, {
      service,
      rules: [{ mime: 'audio/*', presets: ['wav'] }],
      retry: { initialDelayMs: 10, maxDelayMs: 20, maxAttempts: 5 },
    })
    await plugin.bootstrap({ strapi })
    try {
      // The entry's URL points outside the uploads folder: refused, never read.
      await strapi.fire('afterCreate', { ...(await mp3Row(10)), url: '/uploads/../../etc/passwd' })
      await plugin.services.transcoder({ strapi }).idle()
      const record = await plugin.services.transcoder({ strapi }).recordOf(10)
      expect(record).toMatchObject({
        state: 'error',
        error: { code: 'ORIGINAL_REJECTED' },
        outputs: [],
      })
      expect(strapi.logs.filter((l) => l.startsWith('warn:'))).toEqual([])
      expect((await service.listAssets()).items).toHaveLength(0)
    } finally {
      await plugin.destroy({ strapi })
    }
  })
})
