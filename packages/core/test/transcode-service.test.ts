import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import {
  ConfigurationError,
  createTranscoder,
  ffmpegEngine,
  ffprobePath,
  IdempotencyConflictError,
  inProcessQueue,
  type JobEvent,
  localStorage,
  memoryRepository,
  probeMedia,
  type Queue,
  type QueueHandler,
  type QueueMessage,
  type TranscodeService,
  UnknownPresetError,
  UnsupportedMediaError,
} from '../src/index.ts'
import {
  filesUnder,
  jobEnd,
  makeCorruptMedia,
  makeTone,
  makeVideo,
  probe,
  writeFfconcat,
  writeHlsPlaylist,
} from '../src/testing/index.ts'

const SEED_PRESETS = ['1351620000001-300300', '1351620000001-300110', '1351620000001-100110']

let dir: string
let service: TranscodeService

function makeService(): TranscodeService {
  return createTranscoder({
    storage: localStorage({ root: join(dir, 'files') }),
    engine: ffmpegEngine({ tmpDir: join(dir, 'engine-tmp') }),
    repository: memoryRepository(),
    tmpDir: join(dir, 'spool'),
    pollIntervalMs: 50,
  })
}

/** The in-process queue, with a record of every message handed to it (and a send to fail). */
function countingQueue(): Queue & { sent: string[]; failNext: boolean } {
  const inner = inProcessQueue()
  const queue = {
    sent: [] as string[],
    failNext: false,
    async send(message: QueueMessage): Promise<void> {
      queue.sent.push(message.jobId)
      if (queue.failNext) {
        queue.failNext = false
        throw new Error('the queue is unreachable')
      }
      await inner.send(message)
    },
    work: (handler: QueueHandler) => inner.work(handler),
    close: () => inner.close(),
  }
  return queue
}

/** A TCP listener that counts the connections made to it. */
async function listener(): Promise<{ url: string; connections: () => number; close: () => void }> {
  let count = 0
  const server: Server = createServer((socket) => {
    count++
    socket.destroy()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (!address || typeof address === 'string') throw new Error('no address')
  return {
    url: `http://127.0.0.1:${address.port}`,
    connections: () => count,
    close: () => server.close(),
  }
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-service-'))
  service = makeService()
})

afterEach(async () => {
  await service.close()
  await rm(dir, { recursive: true, force: true })
})

describe('TranscodeService', () => {
  it("runs the seed's job: one mp3 in, WAV + FLAC + AAC 256k in mp4 out", async () => {
    const input = join(dir, 'seed.mp3')
    await makeTone(input, { seconds: 10, format: 'mp3' })
    const asset = await service.ingest(createReadStream(input), { filename: 'my_mp3.mp3' })
    expect(asset.contentType).toBe('audio/mpeg')
    expect(asset.originalFilename).toBe('my_mp3.mp3')
    // Hashed on the service's hashing thread from the spool: the bytes that were stored.
    expect(asset.sha256).toBe(
      createHash('sha256')
        .update(await readFile(input))
        .digest('hex'),
    )

    const job = await service.transcode(asset.id, { presets: SEED_PRESETS })
    expect(job.outputs.map((o) => o.presetId)).toEqual(['wav', 'flac', 'aac-256k'])
    const done = await jobEnd(service, job.id)
    expect(done.state).toBe('complete')
    expect(done.progress).toBe(100)

    const inputDuration = Number((await probe(input)).format.duration)
    const byPreset = new Map(done.outputs.map((o) => [o.presetId, o]))
    const local = (key: string) => join(dir, 'files', key)

    const wav = await probe(local(byPreset.get('wav')!.storageKey))
    expect(wav.streams[0]).toMatchObject({
      codec_name: 'pcm_s16le',
      sample_rate: '44100',
      channels: 2,
    })
    const flac = await probe(local(byPreset.get('flac')!.storageKey))
    expect(flac.streams[0]).toMatchObject({ codec_name: 'flac', channels: 2 })
    const aac = await probe(local(byPreset.get('aac-256k')!.storageKey))
    expect(aac.format.format_name).toContain('mp4')
    expect(aac.streams[0]?.codec_name).toBe('aac')
    expect(Math.abs(Number(aac.streams[0]?.bit_rate) - 256_000)).toBeLessThan(256_000 * 0.1)

    for (const result of [wav, flac, aac]) {
      expect(Math.abs(Number(result.format.duration) - inputDuration)).toBeLessThan(0.1)
    }
    for (const output of done.outputs) {
      expect(output.state).toBe('complete')
      expect(output.size).toBeGreaterThan(0)
    }
  })

  it('sends job events in order, with progress that only rises', async () => {
    const input = join(dir, 'long.wav')
    await makeTone(input, { seconds: 60, format: 'wav' })
    const asset = await service.ingest(createReadStream(input))
    const events: JobEvent[] = []
    service.subscribe((event) => events.push(event))
    const job = await service.transcode(asset.id, { presets: ['flac', 'mp3-320k', 'aac-256k'] })
    await jobEnd(service, job.id)

    const mine = events.filter((e) => e.job.id === job.id)
    expect(mine[0]?.type).toBe('job.created')
    const states = mine.map((e) => e.job.state)
    const order = ['submitted', 'progressing', 'complete']
    const ranks = states.map((s) => order.indexOf(s))
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b))
    expect(states.at(-1)).toBe('complete')
    const progress = mine.map((e) => e.job.progress)
    expect(progress).toEqual([...progress].sort((a, b) => a - b))
    expect(progress.filter((p) => p > 0 && p < 100).length).toBeGreaterThan(0)
    expect(progress.at(-1)).toBe(100)
  })

  it('cancels a running job: state canceled and no output left', async () => {
    const input = join(dir, 'long.wav')
    await makeTone(input, { seconds: 300, format: 'wav' })
    const asset = await service.ingest(createReadStream(input))
    const job = await service.transcode(asset.id, { presets: ['flac', 'mp3-320k'] })
    for await (const update of service.watch(job.id)) {
      if (update.progress > 0) break
    }
    const canceled = await service.cancel(job.id)
    expect(canceled.state).toBe('canceled')
    expect(canceled.outputs.every((o) => o.state === 'canceled')).toBe(true)
    const after = await jobEnd(service, job.id)
    expect(after.state).toBe('canceled')
    for (const output of after.outputs) {
      expect(await service.storage.head(output.storageKey)).toBeNull()
    }
    expect(await filesUnder(join(dir, 'files', asset.id, job.id))).toEqual([])
    await expect.poll(() => filesUnder(join(dir, 'engine-tmp'))).toEqual([])
  })

  it('ends a job on an input that cannot be decoded in error, with a stable code', async () => {
    const input = join(dir, 'corrupt.mp3')
    await makeCorruptMedia(input)
    // The header is a real mp3's, so it probes; the frames behind it are noise.
    const asset = await service.ingest(createReadStream(input))
    const job = await service.transcode(asset.id, { presets: ['flac'] })
    const done = await jobEnd(service, job.id)
    expect(done.state).toBe('error')
    expect(done.errorCode).toBe('DECODE_FAILED')
    expect(done.errorMessage).toBeTruthy()
    expect(await service.storage.head(done.outputs[0]!.storageKey)).toBeNull()
  })

  it('reads an MPEG-TS upload and transcodes it', async () => {
    const input = join(dir, 'camera.ts')
    await makeVideo(input, { seconds: 1, width: 160, height: 120, container: 'mpegts' })
    const asset = await service.ingest(createReadStream(input), { filename: 'camera.ts' })
    expect(asset.contentType).toBe('video/mp2t')
    expect(asset.storageKey).toMatch(/\.ts$/)
    expect(asset.media.formatName).toBe('mpegts')
    expect(asset.media.streams.map((s) => [s.type, s.codec]).sort()).toEqual([
      ['audio', 'aac'],
      ['video', 'h264'],
    ])

    const done = await jobEnd(
      service,
      (await service.transcode(asset.id, { presets: ['thumbnail'] })).id,
    )
    expect(done.state).toBe('complete')
    const thumbnail = await probe(join(dir, 'files', done.outputs[0]!.storageKey))
    expect(thumbnail.streams[0]).toMatchObject({ codec_type: 'video', width: 160, height: 120 })
  })

  it('tells a watcher of a change at once, however many polls found nothing before it', async () => {
    const input = join(dir, 'short.mp3')
    await makeTone(input, { seconds: 1, format: 'mp3' })
    const paused = createTranscoder({
      storage: service.storage,
      engine: service.engine,
      repository: service.repository,
      tmpDir: join(dir, 'spool'),
      worker: false,
      pollIntervalMs: 1000,
    })
    const asset = await paused.ingest(createReadStream(input))
    const job = await paused.transcode(asset.id, { presets: ['flac'] })
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] })
    try {
      const updates = paused.watch(job.id)
      expect((await updates.next()).value).toMatchObject({ state: 'submitted' })
      const update = updates.next()
      // Three polls that find the job as it was.
      for (let i = 0; i < 3; i++) await vi.advanceTimersByTimeAsync(1000)
      await paused.cancel(job.id)
      // No clock moves from here: only the change event can wake the watcher.
      const first = await Promise.race([
        update,
        new Promise((resolve) => setImmediate(() => resolve('still waiting'))),
      ])
      expect(first).toMatchObject({ value: { state: 'canceled' } })
      expect(await updates.next()).toMatchObject({ done: true })
    } finally {
      vi.useRealTimers()
      await paused.close()
    }
  })

  it('refuses bytes that are not media, whatever the name, and leaves nothing behind', async () => {
    const body = Buffer.from('<html><body>not a song</body></html>')
    const error = await service.ingest([body], { filename: 'song.mp3' }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(UnsupportedMediaError)
    expect((error as UnsupportedMediaError).code).toBe('UNSUPPORTED_MEDIA')
    expect((await service.listAssets()).items).toEqual([])
    expect(await filesUnder(join(dir, 'files'))).toEqual([])
    expect(await filesUnder(join(dir, 'spool'))).toEqual([])
  })

  it.each([
    ['an HLS playlist', writeHlsPlaylist],
    ['an ffconcat list', writeFfconcat],
  ])('rejects %s named .mp3 before decoding, with no connection made', async (_name, write) => {
    const tcp = await listener()
    try {
      const input = join(dir, 'playlist.mp3')
      await write(input, `${tcp.url}/segment.ts`)
      const error = await service
        .ingest(createReadStream(input), { filename: 'playlist.mp3' })
        .catch((e: unknown) => e)
      expect(error).toBeInstanceOf(UnsupportedMediaError)
      // Even past the byte sniffing, ffprobe may open nothing but the file itself.
      await expect(probeMedia(input)).rejects.toBeInstanceOf(UnsupportedMediaError)
      expect(tcp.connections()).toBe(0)
      expect((await service.listAssets()).items).toEqual([])
      expect(await filesUnder(join(dir, 'files'))).toEqual([])
      expect(await filesUnder(join(dir, 'spool'))).toEqual([])
    } finally {
      tcp.close()
    }
  })

  it('gives the same job for the same idempotency key, even to concurrent callers', async () => {
    const input = join(dir, 'short.mp3')
    await makeTone(input, { seconds: 2, format: 'mp3' })
    const asset = await service.ingest(createReadStream(input))
    const jobs = await Promise.all(
      Array.from({ length: 10 }, () =>
        service.transcode(asset.id, { presets: ['flac'], idempotencyKey: 'k1' }),
      ),
    )
    expect(new Set(jobs.map((j) => j.id)).size).toBe(1)
    const again = await service.transcode(asset.id, { presets: ['flac'], idempotencyKey: 'k1' })
    expect(again.id).toBe(jobs[0]!.id)
    await expect(
      service.transcode(asset.id, { presets: ['wav'], idempotencyKey: 'k1' }),
    ).rejects.toBeInstanceOf(IdempotencyConflictError)
    expect((await service.listJobs({ assetId: asset.id })).items).toHaveLength(1)
    await jobEnd(service, jobs[0]!.id)
  })

  it('does not send a queue message again for a duplicate of a job already queued', async () => {
    const queue = countingQueue()
    const submitter = createTranscoder({
      storage: localStorage({ root: join(dir, 'files') }),
      engine: ffmpegEngine({ tmpDir: join(dir, 'engine-tmp') }),
      repository: memoryRepository(),
      queue,
      worker: false,
      tmpDir: join(dir, 'spool'),
    })
    try {
      const input = join(dir, 'short.mp3')
      await makeTone(input, { seconds: 1, format: 'mp3' })
      const asset = await submitter.ingest(createReadStream(input))
      const first = await submitter.transcode(asset.id, { presets: ['flac'], idempotencyKey: 'e1' })
      const duplicates = await Promise.all(
        Array.from({ length: 5 }, () =>
          submitter.transcode(asset.id, { presets: ['flac'], idempotencyKey: 'e1' }),
        ),
      )
      expect(duplicates.map((j) => j.id)).toEqual(Array(5).fill(first.id))
      expect(queue.sent).toEqual([first.id])

      // Still untaken long after: its creator may have died before the send, so a duplicate
      // hands it over again.
      vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 61_000 })
      await submitter.transcode(asset.id, { presets: ['flac'], idempotencyKey: 'e1' })
      expect(queue.sent).toEqual([first.id, first.id])
      vi.useRealTimers()

      // A send that failed is retried by the retried request, without waiting.
      queue.failNext = true
      await expect(
        submitter.transcode(asset.id, { presets: ['wav'], idempotencyKey: 'e2' }),
      ).rejects.toThrow('the queue is unreachable')
      const retried = await submitter.transcode(asset.id, {
        presets: ['wav'],
        idempotencyKey: 'e2',
      })
      expect(queue.sent).toEqual([first.id, first.id, retried.id, retried.id])
      await submitter.transcode(asset.id, { presets: ['wav'], idempotencyKey: 'e2' })
      expect(queue.sent).toHaveLength(4)
    } finally {
      vi.useRealTimers()
      await submitter.close()
    }
  })

  it('never runs more probes at once than probeConcurrency, however many uploads arrive', async () => {
    // The real ffprobe behind a script that logs each start and end, and holds each probe
    // open a while so that the uploads overlap.
    const log = join(dir, 'probes.log')
    const wrapper = join(dir, 'ffprobe-logged.sh')
    await writeFile(
      wrapper,
      `#!/bin/sh\necho start >> '${log}'\nsleep 0.3\n'${ffprobePath()}' "$@"\nrc=$?\necho end >> '${log}'\nexit $rc\n`,
    )
    await chmod(wrapper, 0o755)
    const bounded = createTranscoder({
      storage: localStorage({ root: join(dir, 'files') }),
      engine: ffmpegEngine({ tmpDir: join(dir, 'engine-tmp') }),
      repository: memoryRepository(),
      worker: false,
      tmpDir: join(dir, 'spool'),
      probe: (path, options) => probeMedia(path, { ...options, ffprobePath: wrapper }),
      probeConcurrency: 2,
    })
    try {
      const input = join(dir, 'short.mp3')
      await makeTone(input, { seconds: 1, format: 'mp3' })
      const assets = await Promise.all(
        Array.from({ length: 6 }, () => bounded.ingest(createReadStream(input))),
      )
      expect(assets.every((a) => a.media.durationSec !== null)).toBe(true)
      const events = (await readFile(log, 'utf8')).trim().split('\n')
      expect(events.filter((e) => e === 'start')).toHaveLength(6)
      let running = 0
      let most = 0
      for (const event of events) {
        running += event === 'start' ? 1 : -1
        most = Math.max(most, running)
      }
      expect(most).toBe(2)
    } finally {
      await bounded.close()
    }
    expect(() =>
      createTranscoder({
        storage: localStorage({ root: join(dir, 'files') }),
        engine: ffmpegEngine({ tmpDir: join(dir, 'engine-tmp') }),
        repository: memoryRepository(),
        probeConcurrency: 0,
      }),
    ).toThrow(ConfigurationError)
  })

  it('answers a retried upload with the first job and keeps one asset', async () => {
    const input = join(dir, 'short.mp3')
    await makeTone(input, { seconds: 2, format: 'mp3' })
    const first = await service.ingestAndTranscode(createReadStream(input), {
      presets: ['flac'],
      idempotencyKey: 'upload-1',
    })
    const second = await service.ingestAndTranscode(createReadStream(input), {
      presets: ['flac'],
      idempotencyKey: 'upload-1',
    })
    expect(second.job.id).toBe(first.job.id)
    expect(second.asset.id).toBe(first.asset.id)
    expect((await service.listAssets()).items).toHaveLength(1)
    await jobEnd(service, first.job.id)
  })

  it('refuses an unknown preset before storing anything', async () => {
    const input = join(dir, 'short.mp3')
    await makeTone(input, { seconds: 1, format: 'mp3' })
    const error = await service
      .ingestAndTranscode(createReadStream(input), { presets: ['flac', 'no-such-preset'] })
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(UnknownPresetError)
    expect((error as UnknownPresetError).code).toBe('UNKNOWN_PRESET')
    expect((await service.listAssets()).items).toEqual([])
    expect((await service.listJobs()).items).toEqual([])
    expect(await filesUnder(join(dir, 'files'))).toEqual([])
  })

  it('retries a canceled job as one new job, and deletes an asset with its outputs', async () => {
    const input = join(dir, 'short.mp3')
    await makeTone(input, { seconds: 2, format: 'mp3' })
    const paused = createTranscoder({
      storage: service.storage,
      engine: service.engine,
      repository: service.repository,
      tmpDir: join(dir, 'spool'),
      worker: false,
    })
    const asset = await paused.ingest(createReadStream(input))
    const job = await paused.transcode(asset.id, { presets: ['flac'] })
    await paused.cancel(job.id)
    await paused.close()

    const retried = await service.retry(job.id)
    const retriedAgain = await service.retry(job.id)
    expect(retriedAgain.id).toBe(retried.id)
    expect(retried.id).not.toBe(job.id)
    const done = await jobEnd(service, retried.id)
    expect(done.state).toBe('complete')
    expect(await service.storage.head(done.outputs[0]!.storageKey)).not.toBeNull()

    await service.deleteAsset(asset.id)
    expect(await filesUnder(join(dir, 'files'))).toEqual([])
    await expect(service.getJob(retried.id)).rejects.toMatchObject({ code: 'NOT_FOUND' })
  })
})
