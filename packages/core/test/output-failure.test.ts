import { execFile } from 'node:child_process'
import { createReadStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ffmpegEngine } from '../src/engine/ffmpeg-engine.ts'
import { ffmpegPath } from '../src/media/ffmpeg-binaries.ts'
import { memoryRepository } from '../src/repository/memory-repository.ts'
import { createTranscoder } from '../src/service/transcode-service.ts'
import { localStorage } from '../src/storage/local-storage.ts'
import { probe } from '../src/testing/media-fixtures.ts'
import { filesUnder } from '../src/testing/test-helpers.ts'

const execFileAsync = promisify(execFile)

let dir: string
const media = { mkv: '', mp4: '' }

/** One video frame (0.04 s) under 10 s of sound: the still at 10 % of 10 s has no frame. */
async function singleFrame(path: string, format: 'matroska' | 'mp4'): Promise<string> {
  await execFileAsync(ffmpegPath(), [
    ...['-hide_banner', '-v', 'error', '-nostdin', '-y'],
    ...['-f', 'lavfi', '-i', 'testsrc=size=640x360:rate=25:duration=0.04'],
    ...['-f', 'lavfi', '-i', 'sine=frequency=440:duration=10'],
    ...['-c:v', 'libx264', '-pix_fmt', 'yuv420p'],
    ...['-c:a', 'aac', '-f', format, path],
  ])
  return path
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tk-output-failure-'))
  media.mkv = await singleFrame(join(dir, 'one-frame.mkv'), 'matroska')
  media.mp4 = await singleFrame(join(dir, 'one-frame.mp4'), 'mp4')
}, 60_000)
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function runDefaultJob(path: string, presets?: string[]) {
  const root = await mkdtemp(join(dir, 'case-'))
  const service = createTranscoder({
    storage: localStorage({ root: join(root, 'files') }),
    engine: ffmpegEngine({ tmpDir: join(root, 'tmp') }),
    repository: memoryRepository(),
    tmpDir: join(root, 'uploads'),
    worker: false,
  })
  const asset = await service.ingest(createReadStream(path), { filename: 'clip' })
  // No presets: the defaults for a video, mp4-720p and a thumbnail.
  const job = await service.transcode(asset.id, presets ? { presets } : {})
  await service.runJob(job.id)
  const ended = await service.getJob(job.id)
  const files = await filesUnder(join(root, 'files'), { hiddenFolders: false })
  await service.close()
  return { ended, files, root: join(root, 'files') }
}

describe('a video that cannot give a thumbnail', () => {
  it('completes its other outputs; the thumbnail output records its own error', async () => {
    const { ended, files, root } = await runDefaultJob(media.mkv)
    expect(ended.state).toBe('complete')
    expect(ended.errorCode).toBeNull()
    const [video, still] = ended.outputs
    expect(video).toMatchObject({ presetId: 'mp4-720p', state: 'complete', errorCode: null })
    expect(still).toMatchObject({
      presetId: expect.stringMatching(/thumbnail/),
      state: 'error',
      errorCode: 'NO_FRAME',
      errorMessage: expect.stringMatching(/no frame where it is taken/),
    })
    // The video is stored and plays for the length of its sound; nothing of the still is.
    expect(files).toContain(video!.storageKey)
    expect(files).not.toContain(still!.storageKey)
    const probed = await probe(join(root, video!.storageKey))
    expect(Number(probed.format.duration)).toBeGreaterThan(9.5)
  }, 60_000)

  it('takes the still within the video track when the container tells its length', async () => {
    const { ended } = await runDefaultJob(media.mp4)
    expect(ended.state).toBe('complete')
    expect(ended.outputs.map((o) => o.state)).toEqual(['complete', 'complete'])
  }, 60_000)

  it('a job of nothing but the still fails as a whole', async () => {
    const { ended, files } = await runDefaultJob(media.mkv, ['thumbnail'])
    expect(ended).toMatchObject({ state: 'error', errorCode: 'DECODE_FAILED' })
    expect(files.filter((f) => !f.includes('original'))).toEqual([])
  }, 60_000)
})
