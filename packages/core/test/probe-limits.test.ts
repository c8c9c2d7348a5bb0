import { createReadStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ffmpegEngine } from '../src/engine/ffmpeg-engine.ts'
import { probeMedia } from '../src/media/ffprobe.ts'
import { memoryRepository } from '../src/repository/memory-repository.ts'
import { createTranscoder } from '../src/service/transcode-service.ts'
import { localStorage } from '../src/storage/local-storage.ts'
import { makeHugeFramesVideo } from '../src/testing/bomb-fixtures.ts'
import { meterChildren } from './process-meter.ts'

const MiB = 1024 ** 2
let dir: string
let huge: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-probe-limits-'))
  // One 16000×16000 gray PNG frame: about 40 KB of file, 256 MB once decoded.
  huge = await makeHugeFramesVideo(join(dir, 'huge.mov'), { frames: 1 })
}, 120_000)

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

describe('the probe of an upload', () => {
  it('does not decode a frame over maxFramePixels, and still reports its size', async () => {
    const meter = meterChildren(20)
    const media = await probeMedia(huge, { maxFramePixels: 4096 * 4096 })
    const peaks = await meter.stop()
    expect(media.streams).toMatchObject([{ type: 'video', width: 16_000, height: 16_000 }])
    expect(peaks.processes).toBeGreaterThan(0)
    // ffprobe itself is about 55 MB here; decoding the frame takes 256 MB more.
    expect(peaks.rssBytes).toBeLessThan(150 * MiB)
  })

  it('of the service uses the job limit, so the frame is refused without being decoded', async () => {
    const service = createTranscoder({
      storage: localStorage({ root: join(dir, 'files') }),
      engine: ffmpegEngine({ tmpDir: join(dir, 'ffmpeg') }),
      repository: memoryRepository(),
      tmpDir: join(dir, 'uploads'),
      worker: false,
    })
    try {
      const meter = meterChildren(20)
      const asset = await service.ingest(createReadStream(huge))
      const peaks = await meter.stop()
      expect(peaks.rssBytes).toBeLessThan(150 * MiB)
      await expect(service.transcode(asset.id)).rejects.toMatchObject({ code: 'FRAME_TOO_LARGE' })
    } finally {
      await service.close()
    }
  })
})
