import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ffmpegPath, ffprobePath } from '../media/ffmpeg-binaries.ts'

const execFileAsync = promisify(execFile)

export interface ToneOptions {
  seconds: number
  format: 'mp3' | 'wav' | 'flac' | 'm4a'
  /** @default 2 */
  channels?: 1 | 2
  /** @default 44_100 */
  sampleRate?: number
}

export interface VideoOptions {
  seconds: number
  width: number
  height: number
  /** Add a sine sound track. @default true */
  audio?: boolean
  /** @default 25 */
  frameRate?: number
  /** `mpegts` writes a transport stream, as cameras and broadcast recorders do. @default 'mp4' */
  container?: 'mp4' | 'mpegts'
}

/** What `ffprobe -show_format -show_streams -print_format json` prints. */
export interface ProbeResult {
  format: {
    format_name: string
    duration?: string
    bit_rate?: string
    size?: string
    [key: string]: unknown
  }
  streams: Array<{
    index: number
    codec_type: string
    codec_name: string
    sample_rate?: string
    channels?: number
    bit_rate?: string
    width?: number
    height?: number
    duration?: string
    avg_frame_rate?: string
    profile?: string
    pix_fmt?: string
    [key: string]: unknown
  }>
}

async function ffmpeg(args: string[]): Promise<void> {
  await execFileAsync(ffmpegPath(), ['-hide_banner', '-v', 'error', '-nostdin', '-y', ...args], {
    maxBuffer: 4 * 1024 * 1024,
  })
}

const TONE_CODECS: Record<ToneOptions['format'], string[]> = {
  mp3: ['-c:a', 'libmp3lame', '-b:a', '192k', '-f', 'mp3'],
  wav: ['-c:a', 'pcm_s16le', '-f', 'wav'],
  flac: ['-c:a', 'flac', '-f', 'flac'],
  m4a: ['-c:a', 'aac', '-b:a', '192k', '-f', 'mp4'],
}

/**
 * Writes a tone: a sine per channel (440 Hz left, 660 Hz right) with a little white noise,
 * so that lossy encoders meet their bit rate as they would on music (a pure sine is so easy
 * that AAC spends half its budget).
 */
export async function makeTone(path: string, options: ToneOptions): Promise<string> {
  const channels = options.channels ?? 2
  const sampleRate = options.sampleRate ?? 44_100
  const voices = ['440', '660']
    .slice(0, channels)
    .map((hz, i) => `0.4*sin(${hz}*2*PI*t)+0.1*(2*random(${i})-1)`)
    .join('|')
  await ffmpeg([
    '-f',
    'lavfi',
    '-i',
    `aevalsrc=${voices}:s=${sampleRate}:d=${options.seconds}`,
    '-ac',
    String(channels),
    ...TONE_CODECS[options.format],
    path,
  ])
  return path
}

/** Writes a small H.264 (+ AAC) MP4, or MPEG-TS, of ffmpeg's test pattern. */
export async function makeVideo(path: string, options: VideoOptions): Promise<string> {
  const { seconds, width, height } = options
  const rate = options.frameRate ?? 25
  const audio = options.audio ?? true
  const container = options.container ?? 'mp4'
  await ffmpeg([
    '-f',
    'lavfi',
    '-i',
    `testsrc=size=${width}x${height}:rate=${rate}:duration=${seconds}`,
    ...(audio
      ? ['-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=44100:duration=${seconds}`]
      : []),
    '-c:v',
    'libx264',
    '-preset',
    'ultrafast',
    '-pix_fmt',
    'yuv420p',
    ...(audio ? ['-c:a', 'aac', '-b:a', '96k', '-ac', '2'] : []),
    ...(container === 'mp4' ? ['-movflags', '+faststart'] : []),
    '-f',
    container,
    path,
  ])
  return path
}

/**
 * Writes an M4A whose header (`moov`, moved to the front) is intact, so it probes as AAC, but
 * whose audio data is noise, so that decoding it fails. The noise is derived from a hash
 * chain, not drawn at random: the same bytes, the same failure, every run.
 */
export async function makeCorruptMedia(path: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'transcodekit-fixture-'))
  try {
    const source = join(dir, 'source.m4a')
    await ffmpeg([
      '-f',
      'lavfi',
      '-i',
      'sine=f=440:d=10',
      '-ac',
      '2',
      '-c:a',
      'aac',
      '-movflags',
      '+faststart',
      source,
    ])
    const bytes = await readFile(source)
    const data = bytes.indexOf('mdat') + 4 + 64
    let block = Buffer.alloc(0)
    for (let at = data; at < bytes.length; at += 32) {
      block = createHash('sha256').update(block).update(String(at)).digest()
      block.copy(bytes, at)
    }
    await writeFile(path, bytes)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
  return path
}

/** Writes an HLS playlist whose only segment is `url`: a hostile input (name it `.mp3`). */
export async function writeHlsPlaylist(path: string, url: string): Promise<string> {
  await writeFile(
    path,
    `#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n${url}\n#EXT-X-ENDLIST\n`,
  )
  return path
}

/** Writes an ffconcat list that points at `target` (a file or URL): a hostile input. */
export async function writeFfconcat(path: string, target: string): Promise<string> {
  await writeFile(path, `ffconcat version 1.0\nfile '${target.replaceAll("'", "'\\''")}'\n`)
  return path
}

/**
 * ffprobe's JSON about a file, for assertions. Only the `file` protocol: a fixture can never
 * make the test open a connection.
 */
export async function probe(path: string): Promise<ProbeResult> {
  const { stdout } = await execFileAsync(
    ffprobePath(),
    [
      '-v',
      'error',
      '-protocol_whitelist',
      'file',
      '-print_format',
      'json',
      '-show_format',
      '-show_streams',
      `file:${path}`,
    ],
    { maxBuffer: 8 * 1024 * 1024 },
  )
  return JSON.parse(stdout) as ProbeResult
}
