import { describe, expect, it } from 'vitest'
import { ffmpegOutputArgs } from '../src/engine/ffmpeg-args.ts'
import { InvalidPresetError, UnknownPresetError, UnsupportedMediaError } from '../src/errors.ts'
import type { MediaInfo } from '../src/model.ts'
import { builtinPresets } from '../src/presets/builtin-presets.ts'
import { createPresetCatalog, validatePreset } from '../src/presets/preset-catalog.ts'
import type { Preset } from '../src/presets/preset-schema.ts'

const ET = '1351620000001-'

// Every Elastic Transcoder system preset listed in FIELD-NOTES.md, with what it must be.
const ET_PRESETS: Array<
  [suffix: string, container: Preset['container'], audio?: string, kbps?: number]
> = [
  ['300300', 'wav', 'pcm_s16le'],
  ['300110', 'flac', 'flac'],
  ['300010', 'mp3', 'mp3', 320],
  ['300020', 'mp3', 'mp3', 192],
  ['300030', 'mp3', 'mp3', 160],
  ['300040', 'mp3', 'mp3', 128],
  ['100110', 'mp4', 'aac', 256],
  ['100120', 'mp4', 'aac', 160],
  ['100130', 'mp4', 'aac', 128],
  ['100141', 'mp4', 'aac', 64],
  ['000001', 'mp4'],
  ['000010', 'mp4'],
  ['000020', 'mp4'],
  ['200010', 'hls'],
  ['200020', 'hls'],
  ['200030', 'hls'],
  ['200040', 'hls'],
  ['200050', 'hls'],
  ['200060', 'hls', 'aac', 160],
  ['100240', 'webm'],
]

const videoInput: MediaInfo = {
  formatName: 'mov,mp4,m4a,3gp,3g2,mj2',
  durationSec: 20,
  bitRate: 2_000_000,
  streams: [
    {
      index: 0,
      type: 'video',
      codec: 'h264',
      durationSec: 20,
      bitRate: 1_800_000,
      width: 1920,
      height: 1080,
      frameRate: 60,
    },
    {
      index: 1,
      type: 'audio',
      codec: 'aac',
      durationSec: 20,
      bitRate: 128_000,
      sampleRate: 48_000,
      channels: 2,
    },
  ],
}

const audioInput: MediaInfo = {
  formatName: 'mp3',
  durationSec: 10,
  bitRate: 192_000,
  streams: [
    {
      index: 0,
      type: 'audio',
      codec: 'mp3',
      durationSec: 10,
      bitRate: 192_000,
      sampleRate: 44_100,
      channels: 2,
    },
  ],
}

function argsFor(name: string, media: MediaInfo = videoInput): string[] {
  const preset = createPresetCatalog().resolve(name)
  return ffmpegOutputArgs(preset, {
    index: 0,
    media,
    path: `/tmp/job/out-0/${preset.id}.${preset.extension}`,
    segmentPattern: `/tmp/job/out-0/${preset.id}-%05d.ts`,
  }).args
}

/** The value that follows `flag` in an argument list. */
function option(args: string[], flag: string): string | undefined {
  const at = args.indexOf(flag)
  return at === -1 ? undefined : args[at + 1]
}

describe('preset catalog', () => {
  const catalog = createPresetCatalog()

  it.each(ET_PRESETS)(
    'resolves the Elastic Transcoder system preset %s',
    (suffix, container, audio, kbps) => {
      const preset = catalog.resolve(`${ET}${suffix}`)
      expect(preset.elasticTranscoderPresetId).toBe(`${ET}${suffix}`)
      expect(preset.container).toBe(container)
      if (audio) expect(preset.audio?.codec).toBe(audio)
      if (kbps) expect(preset.audio?.bitrate).toBe(kbps * 1000)
    },
  )

  it('resolves the seed presets to what the seed expects', () => {
    expect(catalog.resolve(`${ET}300300`)).toMatchObject({
      id: 'wav',
      extension: 'wav',
      audio: { codec: 'pcm_s16le', sampleRate: 44_100, channels: 2 },
    })
    expect(catalog.resolve(`${ET}300110`)).toMatchObject({ id: 'flac', extension: 'flac' })
    // "Audio AAC 256k": AAC in an MP4 container.
    expect(catalog.resolve(`${ET}100110`)).toMatchObject({
      container: 'mp4',
      audio: { codec: 'aac', bitrate: 256_000 },
    })
  })

  it.each([
    ['wav', 'wav', 'wav'],
    ['flac', 'flac', 'flac'],
    ['m4a', 'aac-256k', 'm4a'],
    ['mp3-192k', 'mp3-192k', 'mp3'],
    ['mp4-720p', 'mp4-720p', 'mp4'],
    ['hls', 'hls-1m', 'm3u8'],
    ['thumbnail', 'thumbnail', 'jpg'],
    ['waveform', 'waveform', 'png'],
  ])('resolves the alias %s', (alias, id, extension) => {
    const preset = catalog.resolve(alias)
    expect(preset.id).toBe(id)
    expect(preset.extension).toBe(extension)
  })

  it('gives the same preset object for an id and its aliases, once in resolveAll', () => {
    expect(catalog.resolve('m4a')).toBe(catalog.resolve(`${ET}100110`))
    expect(catalog.resolveAll(['m4a', 'aac-256k', `${ET}100110`, 'wav']).map((p) => p.id)).toEqual([
      'aac-256k',
      'wav',
    ])
  })

  it('refuses an unknown preset with UNKNOWN_PRESET', () => {
    for (const name of ['mp5', `${ET}999999`, '', '../wav']) {
      let error: unknown
      try {
        catalog.resolve(name)
      } catch (e) {
        error = e
      }
      expect(error).toBeInstanceOf(UnknownPresetError)
      expect(error).toMatchObject({ code: 'UNKNOWN_PRESET' })
    }
    expect(() => catalog.resolveAll(['wav', 'nope'])).toThrow(UnknownPresetError)
  })

  it('every built-in preset satisfies the preset schema', () => {
    for (const preset of builtinPresets) expect(validatePreset(preset)).toEqual(preset)
  })

  it('accepts a valid custom preset, resolvable by id and alias', () => {
    const custom = {
      id: 'opus-podcast',
      aliases: ['podcast'],
      description: 'Opus 48 kb/s mono in Ogg',
      container: 'ogg',
      extension: 'ogg',
      contentType: 'audio/ogg',
      audio: { codec: 'opus', bitrate: 48_000, channels: 1 },
    }
    const withCustom = createPresetCatalog({ presets: [custom] })
    expect(withCustom.resolve('podcast')).toEqual(custom)
    expect(withCustom.resolve('wav').id).toBe('wav')
    expect(createPresetCatalog({ presets: [custom], builtins: false }).list()).toHaveLength(1)
    const args = ffmpegOutputArgs(withCustom.resolve('podcast'), {
      index: 0,
      media: audioInput,
      path: '/tmp/x.ogg',
    }).args
    expect(option(args, '-c:a')).toBe('libopus')
    // Opus only runs at 48 kHz and friends.
    expect(option(args, '-ar')).toBe('48000')
    expect(option(args, '-ac')).toBe('1')
  })

  it.each([
    ['a bitrate given as text', { audio: { codec: 'aac', bitrate: '128k' } }],
    ['an unknown codec', { audio: { codec: 'wma' } }],
    ['an extra property', { shell: 'rm -rf /' }],
    ['an id that is not a file name', { id: '../etc/passwd' }],
    ['a bad extension', { extension: 'mp4;ls' }],
    ['no audio, video or image', { audio: undefined }],
    [
      'image settings in an mp4',
      { image: { format: 'jpg', source: 'frame', maxWidth: 64, maxHeight: 64 } },
    ],
    ['an hls container without hls settings', { container: 'hls', extension: 'm3u8' }],
  ])('refuses a custom preset with %s: INVALID_PRESET', (_why, change) => {
    const base = {
      id: 'custom-aac',
      description: 'custom',
      container: 'mp4',
      extension: 'm4a',
      contentType: 'audio/mp4',
      audio: { codec: 'aac', bitrate: 96_000 },
    }
    const bad = JSON.parse(JSON.stringify({ ...base, ...change }))
    expect(() => validatePreset(bad)).toThrow(InvalidPresetError)
    expect(() => createPresetCatalog({ presets: [bad] })).toThrow(
      expect.objectContaining({ code: 'INVALID_PRESET' }),
    )
  })

  it('refuses a custom preset whose name is already taken', () => {
    const clash = { ...structuredClone(catalog.resolve('flac')), id: 'flac-copy', aliases: ['wav'] }
    expect(() => createPresetCatalog({ presets: [clash] })).toThrow(
      expect.objectContaining({ code: 'INVALID_PRESET' }),
    )
  })
})

describe('preset → ffmpeg output arguments', () => {
  it('builds arguments for every built-in preset, ending with the output path', () => {
    for (const preset of builtinPresets) {
      const path = `/tmp/job/out-0/${preset.id}.${preset.extension}`
      const plan = ffmpegOutputArgs(preset, {
        index: 3,
        media: videoInput,
        path,
        segmentPattern: `/tmp/job/out-0/${preset.id}-%05d.ts`,
      })
      expect(plan.args.at(-1)).toBe(path)
      expect(plan.args).toContain('-f')
      for (const part of plan.filterComplex) expect(part).toMatch(/\[[a-z]+3\]$/)
    }
  })

  it('wav: pcm_s16le 44.1 kHz stereo, no video', () => {
    const args = argsFor('wav', audioInput)
    expect(option(args, '-c:a')).toBe('pcm_s16le')
    expect(option(args, '-ar')).toBe('44100')
    expect(option(args, '-ac')).toBe('2')
    expect(option(args, '-f')).toBe('wav')
    expect(args).toContain('-vn')
  })

  it('audio presets take the probed audio stream and drop the video', () => {
    const args = argsFor('mp3-192k')
    expect(option(args, '-map')).toBe('0:1')
    expect(args).toContain('-vn')
    expect(option(args, '-c:a')).toBe('libmp3lame')
    expect(option(args, '-b:a')).toBe('192k')
    expect(argsFor('flac', audioInput)).toEqual(
      expect.arrayContaining(['-c:a', 'flac', '-f', 'flac']),
    )
  })

  it('aac in mp4 moves the index to the front', () => {
    const args = argsFor('m4a', audioInput)
    expect(option(args, '-c:a')).toBe('aac')
    expect(option(args, '-b:a')).toBe('256k')
    expect(option(args, '-f')).toBe('mp4')
    expect(option(args, '-movflags')).toBe('+faststart')
  })

  it('mp4-720p: libx264 main profile, fit-in-box scale, 30 fps cap for a 60 fps input, aac', () => {
    const args = argsFor('mp4-720p')
    expect(option(args, '-c:v')).toBe('libx264')
    expect(option(args, '-profile:v')).toBe('main')
    expect(option(args, '-pix_fmt')).toBe('yuv420p')
    expect(option(args, '-vf')).toContain('1280/iw')
    expect(option(args, '-vf')).toContain('720/ih')
    expect(option(args, '-vf')).toMatch(/,fps=30$/)
    expect(option(args, '-c:a')).toBe('aac')
    expect(option(args, '-movflags')).toBe('+faststart')
    expect(args.filter((a) => a === '-map')).toHaveLength(2)
  })

  it('a video preset on a video without sound writes no audio', () => {
    const silent: MediaInfo = { ...videoInput, streams: [videoInput.streams[0]!] }
    const args = argsFor('mp4-720p', silent)
    expect(args).toContain('-an')
    expect(args.filter((a) => a === '-map')).toHaveLength(1)
  })

  it('webm: libvpx and libvorbis', () => {
    const args = argsFor('webm-720p')
    expect(option(args, '-c:v')).toBe('libvpx')
    expect(option(args, '-c:a')).toBe('libvorbis')
    expect(option(args, '-f')).toBe('webm')
  })

  it('hls: vod playlist, segment time, segments next to the playlist, key frames on segment starts', () => {
    const args = argsFor('hls')
    expect(option(args, '-f')).toBe('hls')
    expect(option(args, '-hls_time')).toBe('10')
    expect(option(args, '-hls_playlist_type')).toBe('vod')
    expect(option(args, '-hls_segment_filename')).toBe('/tmp/job/out-0/hls-1m-%05d.ts')
    expect(option(args, '-force_key_frames')).toBe('expr:gte(t,n_forced*10)')
  })

  it('thumbnail: one JPEG frame at 10 % of the duration, scaled to fit', () => {
    const args = argsFor('thumbnail')
    expect(option(args, '-map')).toBe('0:0')
    expect(option(args, '-ss')).toBe('2.000')
    expect(option(args, '-frames:v')).toBe('1')
    expect(option(args, '-c:v')).toBe('mjpeg')
    expect(option(args, '-vf')).toContain('640/iw')
  })

  it('waveform: showwavespic in the filter graph, one PNG frame', () => {
    const preset = createPresetCatalog().resolve('waveform')
    const plan = ffmpegOutputArgs(preset, { index: 2, media: audioInput, path: '/tmp/w.png' })
    expect(plan.filterComplex).toHaveLength(1)
    expect(plan.filterComplex[0]).toMatch(/^\[0:0\].*showwavespic=s=1200x240.*\[wave2\]$/)
    expect(option(plan.args, '-map')).toBe('[wave2]')
    expect(option(plan.args, '-c:v')).toBe('png')
  })

  it('refuses a preset the input cannot feed', () => {
    expect(() => argsFor('thumbnail', audioInput)).toThrow(UnsupportedMediaError)
    const silent: MediaInfo = { ...videoInput, streams: [videoInput.streams[0]!] }
    expect(() => argsFor('wav', silent)).toThrow(UnsupportedMediaError)
    expect(() => argsFor('waveform', silent)).toThrow(UnsupportedMediaError)
  })
})
