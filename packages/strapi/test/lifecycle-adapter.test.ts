import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  createTranscoder,
  DEFAULT_OWNER,
  ffmpegEngine,
  localStorage,
  memoryRepository,
  probeMedia,
  type TranscodeService,
} from '@transcodekit/core'
import { filesUnder, makeTone, makeVideo, probe } from '@transcodekit/core/testing'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  CMS_OWNER,
  createLifecycleAdapter,
  type LifecycleAdapter,
  type LifecycleEvent,
  localUploadPath,
  localUploadsReader,
  matchRule,
  resolveRules,
  snapshotFile,
} from '../src/index.ts'

const RULES = [
  { mime: 'audio/*', presets: ['mp3-128k', 'wav'] },
  { mime: 'video/mp4', presets: ['mp4-480p', 'thumbnail'] },
]

let dir: string
let uploads: string
let service: TranscodeService
let adapter: LifecycleAdapter
let nextId = 1

function makeAdapter(): LifecycleAdapter {
  return createLifecycleAdapter({
    service,
    rules: RULES,
    readOriginal: localUploadsReader({ uploadsDir: uploads }),
  })
}

/** A row as Strapi's local provider leaves it in `afterCreate`'s `event.result`. */
function fileRow(name: string, mime: string, extra: Record<string, unknown> = {}) {
  const id = nextId++
  const hash = `${name.replace(/\W/g, '_')}_${id}`
  const ext = name.slice(name.lastIndexOf('.'))
  return {
    id,
    documentId: `doc${id}`,
    name,
    hash,
    ext,
    mime,
    size: 12.5,
    url: `/uploads/${hash}${ext}`,
    provider: 'local',
    provider_metadata: null,
    formats: null,
    ...extra,
  }
}

function created(result: unknown): LifecycleEvent {
  return { action: 'afterCreate', model: { uid: 'plugin::upload.file' }, result }
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-strapi-adapter-'))
  uploads = join(dir, 'public', 'uploads')
  await mkdir(uploads, { recursive: true })
  service = createTranscoder({
    storage: localStorage({ root: join(dir, 'store'), baseUrl: '/uploads/transcodekit/' }),
    engine: ffmpegEngine({ tmpDir: join(dir, 'engine-tmp') }),
    repository: memoryRepository(),
    tmpDir: join(dir, 'spool'),
    pollIntervalMs: 50,
  })
  adapter = makeAdapter()
})

afterEach(async () => {
  await service.close()
  await rm(dir, { recursive: true, force: true })
})

describe('createLifecycleAdapter', () => {
  it('transcodes an uploaded mp3 to the presets of its rule, under the key strapi:file:<id>', async () => {
    const row = fileRow('song.mp3', 'audio/mpeg')
    await makeTone(join(uploads, `${row.hash}${row.ext}`), { seconds: 2, format: 'mp3' })

    const outcome = await adapter.handle(created(row))
    expect(outcome.status).toBe('submitted')
    if (outcome.status !== 'submitted') return
    expect(outcome.job.idempotencyKey).toBe(`strapi:file:${row.id}`)
    expect(outcome.job.outputs.map((o) => o.presetId).sort()).toEqual(['mp3-128k', 'wav'])
    expect(outcome.asset?.originalFilename).toBe('song.mp3')

    const job = await adapter.settled(outcome.job.id)
    expect(job.state).toBe('complete')
    const record = await adapter.describe(job)
    expect(record.state).toBe('complete')
    expect(record.outputs).toHaveLength(2)
    for (const output of record.outputs) {
      expect(output.state).toBe('complete')
      expect(output.url).toMatch(/^\/uploads\/transcodekit\//)
      expect(output.size).toBeGreaterThan(1000)
      const key = output.url!.slice('/uploads/transcodekit/'.length)
      const probed = await probe(join(dir, 'store', key))
      expect(Number(probed.format.duration)).toBeCloseTo(2, 0)
      const expected = output.preset === 'wav' ? ['pcm_s16le', 'audio/wav'] : ['mp3', 'audio/mpeg']
      expect([probed.streams[0]!.codec_name, output.mime]).toEqual(expected)
    }
  })

  it('transcodes a small mp4 to a 480p mp4 and a thumbnail', async () => {
    const row = fileRow('clip.mp4', 'video/mp4')
    await makeVideo(join(uploads, `${row.hash}${row.ext}`), { seconds: 1, width: 320, height: 240 })
    const outcome = await adapter.handle(created(row))
    if (outcome.status !== 'submitted') throw new Error(`not submitted: ${outcome.status}`)
    const job = await adapter.settled(outcome.job.id)
    expect(job.state).toBe('complete')
    const mp4 = job.outputs.find((o) => o.presetId === 'mp4-480p')!
    const probed = await probe(join(dir, 'store', mp4.storageKey))
    expect(probed.streams.find((s) => s.codec_type === 'video')?.codec_name).toBe('h264')
  })

  it('makes no job for an upload that no rule matches (a text file)', async () => {
    const row = fileRow('notes.txt', 'text/plain')
    await writeFile(join(uploads, `${row.hash}${row.ext}`), 'just some notes\n')
    const outcome = await adapter.handle(created(row))
    expect(outcome).toMatchObject({ status: 'skipped', reason: 'no-rule' })
    expect((await service.listJobs()).items).toHaveLength(0)
    expect((await service.listAssets()).items).toHaveLength(0)
    expect(await adapter.jobOf({ id: String(row.id) })).toBeNull()
  })

  it('ignores other models and other actions', async () => {
    const row = fileRow('song.mp3', 'audio/mpeg')
    expect(
      await adapter.handle({ action: 'afterCreate', model: 'api::article.article', result: row }),
    ).toEqual({
      status: 'ignored',
      reason: 'model',
    })
    expect(
      await adapter.handle({ action: 'afterUpdate', model: 'plugin::upload.file', result: row }),
    ).toEqual({
      status: 'ignored',
      reason: 'action',
    })
    expect(await adapter.handle(created({ name: 'no id' }))).toEqual({
      status: 'ignored',
      reason: 'no-id',
    })
  })

  it('makes one job when the same event is delivered twice (strapi/strapi#21535)', async () => {
    const row = fileRow('song.mp3', 'audio/mpeg')
    await makeTone(join(uploads, `${row.hash}${row.ext}`), { seconds: 1, format: 'mp3' })
    const first = await adapter.handle(created(row))
    const second = await adapter.handle(created(row))
    if (first.status !== 'submitted' || second.status !== 'submitted')
      throw new Error('not submitted')
    expect(second.job.id).toBe(first.job.id)
    expect((await service.listJobs()).items).toHaveLength(1)
    expect((await service.listAssets()).items).toHaveLength(1)
    // The CMS's jobs have their own fixed owner, apart from the HTTP API's.
    expect(first.job.owner).toBe(CMS_OWNER)
    expect((await service.listJobs({ owner: CMS_OWNER })).items).toHaveLength(1)
    expect((await service.listJobs({ owner: DEFAULT_OWNER })).items).toHaveLength(0)
  })

  it('makes one job when ten adapters (ten processes) get the same event at once: the repository key decides', async () => {
    const row = fileRow('song.mp3', 'audio/mpeg')
    await makeTone(join(uploads, `${row.hash}${row.ext}`), { seconds: 1, format: 'mp3' })
    // Separate adapters share nothing but the service, so no in-process coalescing helps.
    const adapters = Array.from({ length: 10 }, () => makeAdapter())
    const outcomes = await Promise.all(adapters.map((a) => a.handle(created(structuredClone(row)))))
    const jobIds = new Set(outcomes.map((o) => (o.status === 'submitted' ? o.job.id : o.status)))
    expect(jobIds.size).toBe(1)
    expect((await service.listJobs({ limit: 100 })).items).toHaveLength(1)
    const assets = (await service.listAssets({ limit: 100 })).items
    expect(assets).toHaveLength(1)
    const [jobId] = jobIds
    const job = await adapter.settled(jobId!)
    expect(job.state).toBe('complete')
    // The losers' ingested copies were removed: one asset folder in storage.
    const stored = await filesUnder(join(dir, 'store'), { hiddenFolders: false })
    expect(new Set(stored.map((p) => p.split('/')[0]))).toEqual(new Set([assets[0]!.id]))
  })

  it('makes one job for ten concurrent deliveries to one adapter', async () => {
    const row = fileRow('song.mp3', 'audio/mpeg')
    await makeTone(join(uploads, `${row.hash}${row.ext}`), { seconds: 1, format: 'mp3' })
    const outcomes = await Promise.all(
      Array.from({ length: 10 }, () => adapter.handle(created(row))),
    )
    expect(
      new Set(outcomes.map((o) => (o.status === 'submitted' ? o.job.id : o.status))).size,
    ).toBe(1)
    expect((await service.listJobs({ limit: 100 })).items).toHaveLength(1)
  })

  it('keeps its own copy of the entry: later changes to event.result do not reach the job', async () => {
    const row = fileRow('song.mp3', 'audio/mpeg')
    await makeTone(join(uploads, `${row.hash}${row.ext}`), { seconds: 1, format: 'mp3' })
    const event = created(row)
    const snapshot = adapter.snapshot(event)!
    const pending = adapter.submit(snapshot)
    // Strapi goes on mutating the row after the hook returns.
    row.url = '/uploads/../../etc/passwd'
    row.mime = 'text/plain'
    const outcome = await pending
    expect(outcome.status).toBe('submitted')
    expect(snapshot.url).toBe(`/uploads/${row.hash}${row.ext}`)
  })

  it('deletes the asset, its outputs and its original when the entry is deleted', async () => {
    const row = fileRow('song.mp3', 'audio/mpeg')
    await makeTone(join(uploads, `${row.hash}${row.ext}`), { seconds: 1, format: 'mp3' })
    const outcome = await adapter.handle(created(row))
    if (outcome.status !== 'submitted') throw new Error('not submitted')
    await adapter.settled(outcome.job.id)
    expect((await filesUnder(join(dir, 'store'), { hiddenFolders: false })).length).toBe(3)

    const deleted = await adapter.handle({
      action: 'afterDelete',
      model: 'plugin::upload.file',
      result: row,
    })
    expect(deleted).toMatchObject({ status: 'deleted', assetId: outcome.job.assetId })
    expect(await filesUnder(join(dir, 'store'), { hiddenFolders: false })).toEqual([])
    expect(await adapter.jobOf({ id: String(row.id) })).toBeNull()
    await expect(service.getAsset(outcome.job.assetId)).rejects.toMatchObject({ code: 'NOT_FOUND' })
    // Deleting again (a repeated afterDelete) is harmless.
    expect(
      await adapter.handle({ action: 'afterDelete', model: 'plugin::upload.file', result: row }),
    ).toMatchObject({
      status: 'deleted',
      assetId: null,
    })
  })

  it('refuses an original whose bytes are not media, whatever its MIME type says, and keeps nothing', async () => {
    const row = fileRow('fake.mp3', 'audio/mpeg')
    await writeFile(
      join(uploads, `${row.hash}${row.ext}`),
      '#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:1/x.mp3\n',
    )
    await expect(adapter.handle(created(row))).rejects.toMatchObject({ code: 'UNSUPPORTED_MEDIA' })
    expect((await service.listAssets()).items).toHaveLength(0)
    expect(await filesUnder(join(dir, 'store'), { hiddenFolders: false })).toEqual([])
    expect(await filesUnder(join(dir, 'spool'), { hiddenFolders: false })).toEqual([])
  })

  it('records the job before any probe by default: a burst waits on no ffprobe', async () => {
    const probed: string[] = []
    const submitter = createTranscoder({
      storage: localStorage({ root: join(dir, 'store') }),
      engine: ffmpegEngine({ tmpDir: join(dir, 'engine-tmp') }),
      repository: memoryRepository(),
      tmpDir: join(dir, 'spool'),
      probe: (path, options) => {
        probed.push(path)
        return probeMedia(path, options)
      },
      worker: false,
    })
    try {
      const deferred = createLifecycleAdapter({
        service: submitter,
        rules: RULES,
        readOriginal: localUploadsReader({ uploadsDir: uploads }),
      })
      const row = fileRow('song.wav', 'audio/wav')
      await makeTone(join(uploads, `${row.hash}${row.ext}`), { seconds: 1, format: 'wav' })
      const outcome = await deferred.handle(created(row))
      if (outcome.status !== 'submitted') throw new Error(`not submitted: ${outcome.status}`)
      expect(outcome.job.state).toBe('submitted')
      expect(outcome.asset?.media).toBeNull()
      expect(probed).toEqual([])

      // With `probe: 'now'`, the same entry is probed before its job exists.
      const eager = createLifecycleAdapter({
        service: submitter,
        rules: RULES,
        readOriginal: localUploadsReader({ uploadsDir: uploads }),
        keyPrefix: 'eager:',
        probe: 'now',
      })
      const now = await eager.handle(created(row))
      if (now.status !== 'submitted') throw new Error(`not submitted: ${now.status}`)
      expect(probed).toHaveLength(1)
      expect(now.asset?.media?.formatName).toBe('wav')
    } finally {
      await submitter.close()
    }
  })

  it('fails the job of an original that passes the sniff but is not media, and keeps no output', async () => {
    const row = fileRow('noise.mp3', 'audio/mpeg')
    await writeFile(join(uploads, `${row.hash}${row.ext}`), Buffer.alloc(8192, 0x5a))
    const outcome = await adapter.handle(created(row))
    if (outcome.status !== 'submitted') throw new Error(`not submitted: ${outcome.status}`)
    const job = await adapter.settled(outcome.job.id)
    expect(job.state).toBe('error')
    expect((await adapter.describe(job)).error?.code).toBe('UNSUPPORTED_MEDIA')
    expect(job.outputs.map((o) => o.state)).toEqual(['error', 'error'])
    // The original only: the job wrote nothing.
    expect(await filesUnder(join(dir, 'store'), { hiddenFolders: false })).toEqual([
      outcome.asset!.storageKey,
    ])
  })

  it('reads only files directly inside the uploads folder', async () => {
    await writeFile(join(dir, 'secret.mp3'), 'not for you')
    await symlink(join(dir, 'secret.mp3'), join(uploads, 'link.mp3'))
    const hostile = [
      '/uploads/../secret.mp3',
      '/uploads/%2e%2e%2fsecret.mp3',
      '/uploads/sub/dir.mp3',
      '/etc/passwd',
      'http://example.invalid/uploads/a.mp3',
      '/uploads/',
      null,
    ]
    for (const url of hostile) {
      expect(() => localUploadPath({ id: '1', url }, uploads), String(url)).toThrowError(
        expect.objectContaining({ code: 'ORIGINAL_REJECTED' }),
      )
    }
    const reader = localUploadsReader({ uploadsDir: uploads })
    const link = snapshotFile(fileRow('link.mp3', 'audio/mpeg', { url: '/uploads/link.mp3' }))!
    await expect(reader(link, {})).rejects.toMatchObject({ code: 'ORIGINAL_REJECTED' })
    const missing = snapshotFile(fileRow('gone.mp3', 'audio/mpeg'))!
    await expect(reader(missing, {})).rejects.toMatchObject({ code: 'ORIGINAL_NOT_FOUND' })
    expect(localUploadPath({ id: '1', url: '/uploads/abc_123.mp3' }, uploads)).toBe(
      join(uploads, 'abc_123.mp3'),
    )
  })

  it('checks its options: rules, presets and the service', () => {
    expect(() =>
      createLifecycleAdapter({
        service,
        rules: [{ mime: 'audio/*', presets: ['no-such-preset'] }],
        readOriginal: async () => [],
      }),
    ).toThrowError(expect.objectContaining({ code: 'UNKNOWN_PRESET' }))
    expect(() =>
      createLifecycleAdapter({ service, rules: [], readOriginal: async () => [] }),
    ).toThrowError(/rules must be a non-empty array/)
    expect(() =>
      createLifecycleAdapter({
        service: {} as TranscodeService,
        rules: RULES,
        readOriginal: async () => [],
      }),
    ).toThrowError(/"service" must be a TranscodeService/)
  })
})

describe('MIME rules', () => {
  const rules = resolveRules([
    { mime: 'video/mp4', presets: ['mp4-720p'] },
    { mime: 'video/*', presets: ['webm'] },
    { mime: 'Audio/*', presets: ['aac-256k'] },
  ])

  it('picks the first matching rule, by exact type, then family', () => {
    expect(matchRule(rules, 'video/mp4')?.presets).toEqual(['mp4-720p'])
    expect(matchRule(rules, 'video/quicktime')?.presets).toEqual(['webm'])
    expect(matchRule(rules, 'AUDIO/MPEG; charset=binary')?.presets).toEqual(['aac-256k'])
    expect(matchRule(rules, 'text/plain')).toBeNull()
    expect(matchRule(rules, 'image/png')).toBeNull()
    expect(matchRule(rules, null)).toBeNull()
    expect(matchRule(rules, 'nonsense')).toBeNull()
  })

  it('refuses malformed rules with a message naming the rule', () => {
    expect(() => resolveRules([{ mime: 'audio', presets: ['wav'] }])).toThrowError(
      /rules\[0\]\.mime/,
    )
    expect(() => resolveRules([{ mime: '*/mp4', presets: ['wav'] }])).toThrowError(
      /rules\[0\]\.mime/,
    )
    expect(() =>
      resolveRules([
        { mime: 'audio/*', presets: ['wav'] },
        { mime: 'video/*', presets: [] },
      ]),
    ).toThrowError(/rules\[1\]\.presets/)
    expect(() => resolveRules('audio/*')).toThrowError(
      expect.objectContaining({ code: 'CONFIGURATION' }),
    )
  })
})
