import { describe, expect, it } from 'vitest'
import { ffmpegInputArgs } from '../src/engine/ffmpeg-args.ts'
import { ALLOWED_INPUT_FORMATS } from '../src/media/sniff.ts'
import type { MediaInfo } from '../src/model.ts'

const MP4: MediaInfo = {
  formatName: 'mov,mp4,m4a,3gp,3g2,mj2',
  durationSec: 10,
  bitRate: null,
  streams: [],
}

/** The value following `option` in `args`. */
function optionValue(args: string[], option: string): string | undefined {
  const at = args.indexOf(option)
  return at === -1 ? undefined : args[at + 1]
}

describe('ffmpegInputArgs', () => {
  it('opens the input through the file protocol only, never a pipe', () => {
    const args = ffmpegInputArgs('/work/job/input', MP4)
    expect(optionValue(args, '-protocol_whitelist')).toBe('file')
    expect(args.at(-1)).toBe('file:/work/job/input')
  })

  it('lets the input open only the demuxers the probe allows, the forced one first', () => {
    const args = ffmpegInputArgs('/work/job/input', MP4)
    expect(optionValue(args, '-format_whitelist')?.split(',')).toEqual(
      ALLOWED_INPUT_FORMATS.flatMap((name) => name.split(',')),
    )
    expect(optionValue(args, '-format_whitelist')?.split(',')).not.toContain('hls')
    expect(optionValue(args, '-f')).toBe('mov')
    // Both are input options: before `-i`.
    expect(args.indexOf('-format_whitelist')).toBeLessThan(args.indexOf('-i'))
  })
})
