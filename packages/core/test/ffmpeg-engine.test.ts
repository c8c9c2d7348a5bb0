import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { demuxerName } from '../src/engine/ffmpeg-args.ts'
import { ffmpegEngine } from '../src/engine/ffmpeg-engine.ts'
import { AbortedError, UnsupportedMediaError } from '../src/errors.ts'
import { jobPrefix, outputKey } from '../src/keys.ts'
import { bundledBinaries, ffmpegBinary, ffmpegPath } from '../src/media/ffmpeg-binaries.ts'
import { probeMedia } from '../src/media/ffprobe.ts'
import { ALLOWED_INPUT_FORMATS } from '../src/media/sniff.ts'
import type { MediaInfo } from '../src/model.ts'
import type { EngineJobRequest, EngineStatus } from '../src/ports/engine.ts'
import type { Storage } from '../src/ports/storage.ts'
import { createPresetCatalog, validatePreset } from '../src/presets/preset-catalog.ts'
import { localStorage } from '../src/storage/local-storage.ts'
import { engineConformance } from '../src/testing/engine-suite.ts'
import {
  makeCorruptMedia,
  makeTone,
  makeVideo,
  probe,
  writeFfconcat,
  writeHlsPlaylist,
} from '../src/testing/media-fixtures.ts'

const execFileAsync = promisify(execFile)
const catalog = createPresetCatalog()

/** An engine on given binaries, in a fresh folder that must be empty of temp files at the end. */
function conformanceEngine(binaries: { ffmpeg?: string; ffprobe?: string } = {}) {
  return async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tk-ffmpeg-conformance-'))
    const tmp = join(dir, 'tmp')
    return {
      engine: ffmpegEngine({
        tmpDir: tmp,
        ffmpegPath: binaries.ffmpeg,
        ffprobePath: binaries.ffprobe,
      }),
      storage: localStorage({ root: join(dir, 'files') }),
      cleanup: async () => {
        // Whatever the test did, the engine left nothing in its temp dir.
        expect(await readdir(tmp).catch(() => [])).toEqual([])
        await rm(dir, { recursive: true, force: true })
      },
    }
  }
}

// The system's ffmpeg (Debian's in CI: `.ci/run` installs it) and the bundled 2018 builds.
const system = ffmpegBinary().source === 'bundled' ? null : ffmpegBinary().path
if (system) {
  engineConformance(`ffmpeg with local storage (${system})`, conformanceEngine(), {
    corruptInputCode: 'DECODE_FAILED',
  })
}
const bundled = bundledBinaries()
if (bundled.ffmpeg && bundled.ffprobe) {
  engineConformance(
    'ffmpeg with local storage (bundled @ffmpeg-installer and @ffprobe-installer builds)',
    conformanceEngine({ ffmpeg: bundled.ffmpeg, ffprobe: bundled.ffprobe }),
    { corruptInputCode: 'DECODE_FAILED' },
  )
}

/** A folder per test run: storage root, engine temp dir, fixtures, the counting ffmpeg. */
let base: string
let fixtures: string
let tone: { path: string; media: MediaInfo }
let video: { path: string; media: MediaInfo }

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'tk-ffmpeg-engine-'))
  fixtures = join(base, 'fixtures')
  await mkdir(fixtures)
  const tonePath = await makeTone(join(fixtures, 'seed.mp3'), { seconds: 10, format: 'mp3' })
  // 4:3 at 50 fps: every box below must shrink it and keep its shape, and 30 fps caps it.
  const videoPath = await makeVideo(join(fixtures, 'clip.mp4'), {
    seconds: 2,
    width: 1440,
    height: 1080,
    frameRate: 50,
  })
  tone = { path: tonePath, media: await probeMedia(tonePath) }
  video = { path: videoPath, media: await probeMedia(videoPath) }
}, 120_000)

afterAll(async () => {
  await rm(base, { recursive: true, force: true })
})

interface Setup {
  storage: Storage
  root: string
  tmp: string
  /** An ffmpeg that logs its pid to `spawns` before becoming the real one (exec), but for `-version`. */
  countingFfmpeg: string
  spawns: () => Promise<number[]>
}

async function setup(): Promise<Setup> {
  const dir = await mkdtemp(join(base, 'case-'))
  const root = join(dir, 'files')
  const tmp = join(dir, 'tmp')
  const log = join(dir, 'spawns.log')
  const countingFfmpeg = join(dir, 'ffmpeg')
  await writeFile(log, '')
  // `-version` is the engine saying at start which ffmpeg runs, not a job's process.
  await writeFile(
    countingFfmpeg,
    `#!/bin/sh\n[ "$1" = -version ] || echo $$ >> '${log}'\nexec '${ffmpegPath()}' "$@"\n`,
  )
  await chmod(countingFfmpeg, 0o755)
  return {
    storage: localStorage({ root }),
    root,
    tmp,
    countingFfmpeg,
    spawns: async () => (await readFile(log, 'utf8')).split('\n').filter(Boolean).map(Number),
  }
}

async function request(
  storage: Storage,
  input: { path: string; media: MediaInfo },
  presets: readonly (string | ReturnType<typeof validatePreset>)[],
): Promise<EngineJobRequest> {
  const assetId = randomUUID()
  const jobId = randomUUID()
  const key = `media/${assetId}/original.bin`
  await storage.put(key, createReadStream(input.path))
  return {
    jobId,
    input: { key, media: input.media },
    storage,
    outputs: presets.map((p) => {
      const preset = typeof p === 'string' ? catalog.resolve(p) : p
      return {
        name: preset.id,
        key: outputKey('media', assetId, jobId, preset.id, preset.extension),
        preset,
      }
    }),
  }
}

function run(
  engine: ReturnType<typeof ffmpegEngine>,
  job: EngineJobRequest,
  signal = new AbortController().signal,
) {
  const statuses: EngineStatus[] = []
  const result = engine.run(job, { signal, onStatus: (s) => statuses.push({ ...s }) })
  return { result, statuses }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function files(dir: string): Promise<string[]> {
  return readdir(dir, { recursive: true }).catch(() => [])
}

function num(value: string | undefined): number {
  return Number(value)
}

describe('ffmpeg engine', () => {
  it('forces a demuxer that ffmpeg knows for every allowed input format', async () => {
    for (const format of ALLOWED_INPUT_FORMATS) {
      const name = demuxerName(format)
      expect(format.split(',')).toContain(name)
      const { stderr } = await execFileAsync(ffmpegPath(), [
        '-hide_banner',
        '-f',
        name,
        '-i',
        '/dev/null',
      ])
        .then(() => ({ stderr: '' }))
        .catch((error: { stderr: string }) => error)
      expect(stderr, `-f ${name}`).not.toMatch(/Unknown input format/)
    }
    expect(() => demuxerName('hls,applehttp')).toThrow(UnsupportedMediaError)
    expect(() => demuxerName('concat')).toThrow(UnsupportedMediaError)
  })

  it('runs the seed job: wav, flac and aac 256k from one ffmpeg process', async () => {
    const s = await setup()
    const engine = ffmpegEngine({ ffmpegPath: s.countingFfmpeg, tmpDir: s.tmp })
    const job = await request(s.storage, tone, [
      '1351620000001-300300',
      '1351620000001-300110',
      '1351620000001-100110',
    ])
    const started = performance.now()
    const { result, statuses } = run(engine, job)
    const final = await result
    const wallMs = performance.now() - started
    console.log(`seed job (10 s mp3 → wav + flac + aac 256k): ${wallMs.toFixed(0)} ms`)

    expect(final.state, final.error?.message).toBe('complete')
    expect(await s.spawns()).toHaveLength(1)
    const inputDuration = tone.media.durationSec!
    expect(inputDuration).toBeGreaterThan(9.9)

    const [wavKey, flacKey, m4aKey] = job.outputs.map((o) => o.key) as [string, string, string]
    const wav = await probe(s.storage.localPath!(wavKey))
    expect(wav.format.format_name).toBe('wav')
    expect(wav.streams).toHaveLength(1)
    expect(wav.streams[0]).toMatchObject({
      codec_name: 'pcm_s16le',
      sample_rate: '44100',
      channels: 2,
    })

    const flac = await probe(s.storage.localPath!(flacKey))
    expect(flac.format.format_name).toBe('flac')
    expect(flac.streams[0]).toMatchObject({ codec_name: 'flac', sample_rate: '44100', channels: 2 })

    const m4a = await probe(s.storage.localPath!(m4aKey))
    expect(m4a.format.format_name).toContain('mp4')
    expect(m4a.streams).toHaveLength(1)
    expect(m4a.streams[0]).toMatchObject({ codec_name: 'aac', sample_rate: '44100', channels: 2 })
    expect(Math.abs(num(m4a.streams[0]!.bit_rate) - 256_000) / 256_000).toBeLessThan(0.1)
    // faststart: the index (moov) comes before the media data (mdat).
    const head = (await readFile(s.storage.localPath!(m4aKey)))
      .subarray(0, 64 * 1024)
      .toString('latin1')
    expect(head.indexOf('moov')).toBeGreaterThan(0)
    expect(head.indexOf('moov')).toBeLessThan(head.indexOf('mdat'))

    for (const probed of [wav, flac, m4a]) {
      expect(Math.abs(num(probed.format.duration) - inputDuration)).toBeLessThan(0.1)
    }
    for (const output of final.outputs!) {
      expect(output.state).toBe('complete')
      expect(output.size).toBe((await stat(s.storage.localPath!(output.key))).size)
      expect(Math.abs(output.durationSec! - inputDuration)).toBeLessThan(0.1)
    }

    const progress = statuses.map((st) => st.progress!)
    expect(statuses.every((st) => st.state === 'progressing')).toBe(true)
    expect(progress[0]).toBe(0)
    expect(progress).toEqual([...progress].sort((a, b) => a - b))
    expect(new Set(progress).size).toBe(progress.length)
    expect(Math.max(...progress)).toBeLessThan(100)
    expect(await files(s.tmp)).toEqual([])
  })

  it('scales video to fit each box, keeps the aspect ratio, caps the frame rate, writes HLS and a thumbnail', async () => {
    const s = await setup()
    const engine = ffmpegEngine({ ffmpegPath: s.countingFfmpeg, tmpDir: s.tmp })
    const hlsShort = validatePreset({
      ...structuredClone(catalog.resolve('hls')),
      id: 'hls-short',
      aliases: [],
      hls: { segmentSec: 1 },
    })
    const job = await request(s.storage, video, ['mp4-720p', 'thumbnail', hlsShort])
    const final = await run(engine, job).result
    expect(final.state, final.error?.message).toBe('complete')
    expect(await s.spawns()).toHaveLength(1)
    const [mp4Key, jpgKey, hlsKey] = job.outputs.map((o) => o.key) as [string, string, string]

    // 1440×1080 in 1280×720 → 960×720; in 640×360 → 480×360; in 640×432 → 576×432.
    const mp4 = await probe(s.storage.localPath!(mp4Key))
    const v = mp4.streams.find((st) => st.codec_type === 'video')!
    expect(v).toMatchObject({
      codec_name: 'h264',
      width: 960,
      height: 720,
      profile: 'Main',
      pix_fmt: 'yuv420p',
    })
    expect(v.avg_frame_rate).toBe('30/1')
    expect(mp4.streams.find((st) => st.codec_type === 'audio')).toMatchObject({
      codec_name: 'aac',
      channels: 2,
    })
    expect(Math.abs(num(mp4.format.duration) - video.media.durationSec!)).toBeLessThan(0.1)

    const jpg = await probe(s.storage.localPath!(jpgKey))
    expect(jpg.streams[0]).toMatchObject({ codec_name: 'mjpeg', width: 480, height: 360 })
    expect(final.outputs!.find((o) => o.key === jpgKey)!.durationSec).toBeNull()

    const playlist = await readFile(s.storage.localPath!(hlsKey), 'utf8')
    expect(playlist).toMatch(/^#EXTM3U/)
    expect(playlist).toContain('#EXT-X-PLAYLIST-TYPE:VOD')
    expect(playlist).toContain('#EXT-X-ENDLIST')
    const segments = playlist.split('\n').filter((line) => line && !line.startsWith('#'))
    expect(segments.length).toBeGreaterThanOrEqual(2)
    const jobDir = s.storage.localPath!(
      jobPrefix('media', hlsKey.split('/')[1]!, job.jobId).slice(0, -1),
    )
    for (const segment of segments) {
      expect(segment).toMatch(/^hls-short-\d{5}\.ts$/)
      expect(
        await s.storage.head(`${jobPrefix('media', hlsKey.split('/')[1]!, job.jobId)}${segment}`),
      ).not.toBeNull()
    }
    expect((await readdir(jobDir)).sort()).toEqual(
      ['mp4-720p.mp4', 'thumbnail.jpg', 'hls-short.m3u8', ...segments].sort(),
    )
    // The playlist plays: ffmpeg reads it (segments next to it) into one MP4 to check.
    const remuxed = join(s.root, '..', 'hls-check.mp4')
    await execFileAsync(ffmpegPath(), [
      '-v',
      'error',
      '-protocol_whitelist',
      'file',
      '-i',
      s.storage.localPath!(hlsKey),
      '-c',
      'copy',
      '-bsf:a',
      'aac_adtstoasc',
      remuxed,
    ])
    const hls = await probe(remuxed)
    expect(hls.streams.find((st) => st.codec_type === 'video')).toMatchObject({
      width: 576,
      height: 432,
    })
    expect(Math.abs(num(hls.format.duration) - video.media.durationSec!)).toBeLessThan(0.15)
    const hlsStatus = final.outputs!.find((o) => o.key === hlsKey)!
    expect(Math.abs(hlsStatus.durationSec! - video.media.durationSec!)).toBeLessThan(0.15)
    expect(await files(s.tmp)).toEqual([])
  })

  it('writes WebM (VP8 + Vorbis), MP3 CBR and a waveform PNG', async () => {
    const s = await setup()
    const engine = ffmpegEngine({ tmpDir: s.tmp })
    const small = join(base, 'fixtures', 'small.mp4')
    await makeVideo(small, { seconds: 1, width: 320, height: 240 })
    const job = await request(s.storage, { path: small, media: await probeMedia(small) }, [
      'webm',
      'mp3-192k',
      'waveform',
    ])
    const final = await run(engine, job).result
    expect(final.state, final.error?.message).toBe('complete')
    const [webmKey, mp3Key, pngKey] = job.outputs.map((o) => o.key) as [string, string, string]
    const webm = await probe(s.storage.localPath!(webmKey))
    expect(webm.format.format_name).toContain('webm')
    expect(webm.streams.map((st) => st.codec_name).sort()).toEqual(['vorbis', 'vp8'])
    // Never scaled up.
    expect(webm.streams.find((st) => st.codec_name === 'vp8')).toMatchObject({
      width: 320,
      height: 240,
    })
    const mp3 = await probe(s.storage.localPath!(mp3Key))
    expect(mp3.streams).toHaveLength(1)
    expect(mp3.streams[0]).toMatchObject({
      codec_name: 'mp3',
      bit_rate: '192000',
      sample_rate: '44100',
    })
    const png = await probe(s.storage.localPath!(pngKey))
    expect(png.streams[0]).toMatchObject({ codec_name: 'png', width: 1200, height: 240 })
  })

  it('reads the input through get and stores through put when the storage has no local files', async () => {
    const s = await setup()
    const engine = ffmpegEngine({ ffmpegPath: s.countingFfmpeg, tmpDir: s.tmp })
    const real = s.storage
    // The same storage seen as a remote one: no localPath, no putFile.
    const remote: Storage = {
      put: (key, body, options) => real.put(key, body, options),
      get: (key, options) => real.get(key, options),
      head: (key, options) => real.head(key, options),
      delete: (key, options) => real.delete(key, options),
      deletePrefix: (prefix, options) => real.deletePrefix(prefix, options),
      url: (key, options) => real.url(key, options),
    }
    const job = await request(remote, tone, ['flac', 'mp3-192k', 'hls-audio-160k'])
    const final = await run(engine, job).result
    expect(final.state, final.error?.message).toBe('complete')
    const [flacKey, mp3Key, hlsKey] = job.outputs.map((o) => o.key) as [string, string, string]
    for (const key of [flacKey, mp3Key]) {
      const probed = await probe(real.localPath!(key))
      expect(Math.abs(num(probed.format.duration) - tone.media.durationSec!)).toBeLessThan(0.1)
    }
    // Audio-only HLS: 10-second segments of a 10.03-second input, stored beside the playlist.
    const playlist = await readFile(real.localPath!(hlsKey), 'utf8')
    const segments = playlist.split('\n').filter((line) => line && !line.startsWith('#'))
    expect(segments.length).toBeGreaterThanOrEqual(1)
    const folder = hlsKey.slice(0, hlsKey.lastIndexOf('/') + 1)
    for (const segment of segments) expect(await real.head(`${folder}${segment}`)).not.toBeNull()
    const hlsStatus = final.outputs!.find((o) => o.key === hlsKey)!
    expect(Math.abs(hlsStatus.durationSec! - tone.media.durationSec!)).toBeLessThan(0.1)
    expect(await files(s.tmp)).toEqual([])
  })

  it('fails a corrupt input with DECODE_FAILED and a readable message, leaving nothing', async () => {
    const s = await setup()
    const engine = ffmpegEngine({ tmpDir: s.tmp })
    const path = await makeCorruptMedia(join(base, 'fixtures', 'corrupt.mp3'))
    const job = await request(s.storage, { path, media: await probeMedia(path) }, [
      'wav',
      'flac',
      'm4a',
    ])
    const final = await run(engine, job).result
    expect(final.state).toBe('error')
    expect(final.error?.code).toBe('DECODE_FAILED')
    expect(final.error?.message).toMatch(/could not decode the input/)
    expect(final.error?.message).not.toContain(s.tmp)
    expect(final.outputs!.every((o) => o.state === 'error')).toBe(true)
    for (const output of job.outputs) expect(await s.storage.head(output.key)).toBeNull()
    expect(await files(s.tmp)).toEqual([])
  })

  describe('hostile text inputs that got past the gate', () => {
    let server: Server
    let connections = 0
    let port = 0

    beforeAll(async () => {
      server = createServer((socket) => {
        connections++
        socket.destroy()
      })
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      port = (server.address() as { port: number }).port
    })
    afterAll(async () => {
      await new Promise((resolve) => server.close(resolve))
    })

    // What probing a real mp3 says: as if the sniffing and probing had been fooled.
    const asMp3 = (): MediaInfo => ({ ...structuredClone(tone.media) })

    it('an HLS playlist named .mp3 is decoded as mp3: it never fetches nor opens what it names', async () => {
      const s = await setup()
      const engine = ffmpegEngine({ tmpDir: s.tmp })
      for (const target of [tone.path, `http://127.0.0.1:${port}/x.mp3`]) {
        const path = await writeHlsPlaylist(
          join(base, 'fixtures', `pl-${randomUUID()}.mp3`),
          target,
        )
        const job = await request(s.storage, { path, media: asMp3() }, ['wav'])
        const final = await run(engine, job).result
        expect(final.state).toBe('error')
        expect(final.error?.code).toBe('DECODE_FAILED')
        expect(await s.storage.head(job.outputs[0]!.key)).toBeNull()
      }
      expect(connections).toBe(0)
      expect(await files(s.tmp)).toEqual([])
    })

    it('an ffconcat list named .mp3 never opens the file it names', async () => {
      const s = await setup()
      const engine = ffmpegEngine({ tmpDir: s.tmp })
      for (const target of [tone.path, `http://127.0.0.1:${port}/y.mp3`]) {
        const path = await writeFfconcat(join(base, 'fixtures', `cc-${randomUUID()}.mp3`), target)
        const job = await request(s.storage, { path, media: asMp3() }, ['flac'])
        const final = await run(engine, job).result
        expect(final.state).toBe('error')
        expect(final.error?.code).toBe('DECODE_FAILED')
        expect(await s.storage.head(job.outputs[0]!.key)).toBeNull()
      }
      expect(connections).toBe(0)
    })

    it('a format outside the allow list is refused before ffmpeg starts', async () => {
      const s = await setup()
      const engine = ffmpegEngine({ ffmpegPath: s.countingFfmpeg, tmpDir: s.tmp })
      const path = await writeHlsPlaylist(
        join(base, 'fixtures', `pl-${randomUUID()}.mp3`),
        `http://127.0.0.1:${port}/z.mp3`,
      )
      const job = await request(
        s.storage,
        { path, media: { ...asMp3(), formatName: 'hls,applehttp' } },
        ['wav'],
      )
      await expect(run(engine, job).result).rejects.toMatchObject({ code: 'UNSUPPORTED_MEDIA' })
      expect(await s.spawns()).toEqual([])
      expect(connections).toBe(0)
      expect(await files(s.tmp)).toEqual([])
    })
  })

  describe('ending a running job', () => {
    // A job slow enough to be caught running: VP8 and 1080p H.264 of a 1440×1080 clip.
    const slow = ['webm-720p', 'mp4-1080p']

    it('cancel kills ffmpeg, removes the temp dir and stores nothing', async () => {
      const s = await setup()
      const engine = ffmpegEngine({ ffmpegPath: s.countingFfmpeg, tmpDir: s.tmp, killGraceMs: 500 })
      const job = await request(s.storage, video, slow)
      const controller = new AbortController()
      const statuses: EngineStatus[] = []
      const result = engine.run(job, {
        signal: controller.signal,
        onStatus: (status) => {
          statuses.push(status)
          // Mid-encode: ffmpeg has reported real progress.
          if (status.progress! > 0) controller.abort()
        },
      })
      await expect(result).rejects.toBeInstanceOf(AbortedError)
      expect(statuses.map((st) => st.progress! > 0)).toEqual([false, true])
      const [pid] = await s.spawns()
      expect(pid).toBeGreaterThan(0)
      expect(alive(pid!)).toBe(false)
      for (const output of job.outputs) expect(await s.storage.head(output.key)).toBeNull()
      expect(await files(s.tmp)).toEqual([])
    })

    it('the wall-clock limit ends the job in TIMEOUT with nothing left', async () => {
      const s = await setup()
      const engine = ffmpegEngine({
        ffmpegPath: s.countingFfmpeg,
        tmpDir: s.tmp,
        timeoutMs: 1000,
        killGraceMs: 500,
      })
      const job = await request(s.storage, video, slow)
      const { result, statuses } = run(engine, job)
      const final = await result
      expect(final.state).toBe('error')
      expect(final.error?.code).toBe('TIMEOUT')
      expect(final.error?.message).toMatch(/limit/)
      // It did start: the limit stopped a running ffmpeg, which is gone.
      expect(statuses[0]).toMatchObject({ state: 'progressing', progress: 0 })
      const [pid] = await s.spawns()
      expect(alive(pid!)).toBe(false)
      for (const output of job.outputs) expect(await s.storage.head(output.key)).toBeNull()
      expect(await files(s.tmp)).toEqual([])
    })
  })

  it('media fixtures: makeTone writes each format at the asked rate and channels', async () => {
    const cases = [
      { format: 'mp3', codec: 'mp3', channels: 2, sampleRate: 44_100 },
      { format: 'wav', codec: 'pcm_s16le', channels: 1, sampleRate: 48_000 },
      { format: 'flac', codec: 'flac', channels: 2, sampleRate: 22_050 },
      { format: 'm4a', codec: 'aac', channels: 2, sampleRate: 44_100 },
    ] as const
    for (const c of cases) {
      const path = await makeTone(join(fixtures, `fixture-${c.sampleRate}.${c.format}`), {
        seconds: 1,
        format: c.format,
        channels: c.channels,
        sampleRate: c.sampleRate,
      })
      const probed = await probe(path)
      expect(probed.streams).toHaveLength(1)
      expect(probed.streams[0]).toMatchObject({
        codec_name: c.codec,
        channels: c.channels,
        sample_rate: String(c.sampleRate),
      })
      expect(Math.abs(num(probed.format.duration) - 1)).toBeLessThan(0.1)
    }
    const silent = await probe(
      await makeVideo(join(fixtures, 'silent.mp4'), {
        seconds: 1,
        width: 64,
        height: 48,
        audio: false,
      }),
    )
    expect(silent.streams.map((st) => st.codec_type)).toEqual(['video'])
    expect(silent.streams[0]).toMatchObject({ codec_name: 'h264', width: 64, height: 48 })
  })

  it('rejects bad options by name', () => {
    expect(() => ffmpegEngine({ timeoutMs: 0 })).toThrow(/timeoutMs/)
    expect(() => ffmpegEngine({ ffmpegPath: '' })).toThrow(/ffmpegPath/)
    expect(() => ffmpegEngine({ x264Preset: 'fast; rm -rf /' })).toThrow(/x264Preset/)
  })

  it('a missing ffmpeg binary is ENGINE_UNAVAILABLE', async () => {
    const s = await setup()
    const engine = ffmpegEngine({ ffmpegPath: join(s.root, 'no-such-ffmpeg'), tmpDir: s.tmp })
    const job = await request(s.storage, tone, ['wav'])
    await expect(run(engine, job).result).rejects.toMatchObject({ code: 'ENGINE_UNAVAILABLE' })
    expect(await files(s.tmp)).toEqual([])
  })
})
