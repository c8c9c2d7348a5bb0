import { validatePreset } from '@transcodekit/core'
import { describe, expect, it } from 'vitest'
import { checkPresetRequest } from '../src/custom-preset.ts'

const ID = '1767225600000-abc123'

describe('checkPresetRequest: ET preset JSON onto the core preset schema', () => {
  it('maps each supported container onto a valid core preset', () => {
    const cases = [
      [
        { Container: 'wav', Audio: { Codec: 'pcm', SampleRate: '48000', Channels: '2' } },
        { container: 'wav', extension: 'wav', contentType: 'audio/wav' },
        { codec: 'pcm_s16le', sampleRate: 48_000, channels: 2 },
      ],
      [
        { Container: 'ogg', Audio: { Codec: 'vorbis', BitRate: '96' } },
        { container: 'ogg', extension: 'ogg', contentType: 'audio/ogg' },
        { codec: 'vorbis', bitrate: 96_000 },
      ],
      [
        {
          Container: 'mp4',
          Audio: { Codec: 'AAC', BitRate: '128', CodecOptions: { Profile: 'AAC-LC' } },
        },
        { container: 'mp4', extension: 'm4a', contentType: 'audio/mp4' },
        { codec: 'aac', bitrate: 128_000 },
      ],
      [
        { Container: 'flac', Audio: { Codec: 'flac', BitRate: '320', Channels: 'auto' } },
        { container: 'flac', extension: 'flac', contentType: 'audio/flac' },
        { codec: 'flac' },
      ],
    ] as const
    for (const [fields, preset, audio] of cases) {
      const checked = checkPresetRequest({ Name: 'Audio', ...fields }, ID)
      expect(checked.preset).toMatchObject({
        id: `et-${ID}`,
        elasticTranscoderPresetId: ID,
        ...preset,
      })
      expect(checked.preset.audio).toEqual(audio)
      expect(checked.preset.video).toBeUndefined()
      expect(validatePreset(checked.preset)).toEqual(checked.preset)
    }
  })

  it('maps H.264 video in mp4 and vp9 in webm, sizes, bit rates and profile included', () => {
    const mp4 = checkPresetRequest(
      {
        Name: 'Video',
        Container: 'mp4',
        Audio: { Codec: 'AAC', BitRate: '160' },
        Video: {
          Codec: 'H.264',
          CodecOptions: { Profile: 'high' },
          BitRate: '2400',
          MaxWidth: '1280',
          MaxHeight: '720',
          MaxFrameRate: '30',
        },
      },
      ID,
    )
    expect(mp4.preset).toMatchObject({ extension: 'mp4', contentType: 'video/mp4' })
    expect(mp4.preset.video).toEqual({
      codec: 'h264',
      maxWidth: 1280,
      maxHeight: 720,
      bitrate: 2_400_000,
      maxFrameRate: 30,
      profile: 'high',
    })
    const webm = checkPresetRequest(
      {
        Name: 'WebM',
        Container: 'webm',
        Audio: { Codec: 'vorbis', BitRate: '128' },
        Video: { Codec: 'vp9', MaxWidth: 'auto', MaxHeight: 'auto', BitRate: 'auto' },
      },
      ID,
    )
    expect(webm.preset.video).toEqual({ codec: 'vp9', maxWidth: 1920, maxHeight: 1080 })
    expect(webm.settings).toMatchObject({ Container: 'webm', Video: { BitRate: 'auto' } })
  })

  it('refuses with a ValidationException naming the field', () => {
    const refused = [
      [{ Container: 'mp3', Audio: { Codec: 'mp3', BitRate: '128' } }, 'Name'],
      [{ Name: 'x'.repeat(41), Container: 'mp3', Audio: { Codec: 'mp3', BitRate: '128' } }, 'Name'],
      [{ Name: 'n', Container: 'mp3', Audio: { Codec: 'mp3', BitRate: '128' }, Extra: 1 }, 'Extra'],
      [{ Name: 'n', Container: 'mp3' }, 'Audio'],
      [{ Name: 'n', Container: 'mp3', Audio: { Codec: 'mp3' } }, 'Audio:BitRate'],
      [
        {
          Name: 'n',
          Container: 'mp3',
          Audio: { Codec: 'mp3', BitRate: '128', SampleRate: '11025' },
        },
        'Audio:SampleRate',
      ],
      [
        {
          Name: 'n',
          Container: 'mp4',
          Audio: { Codec: 'AAC', BitRate: '128', CodecOptions: { Profile: 'HE-AAC' } },
        },
        'Profile',
      ],
      [
        {
          Name: 'n',
          Container: 'mp4',
          Audio: { Codec: 'AAC', BitRate: '128' },
          Video: { Codec: 'H.264', FrameRate: '30' },
        },
        'Video:FrameRate',
      ],
      [
        {
          Name: 'n',
          Container: 'mp4',
          Audio: { Codec: 'AAC', BitRate: '128' },
          Video: { Codec: 'H.264', Watermarks: [{ Id: 'w' }] },
        },
        'Video:Watermarks',
      ],
      [
        {
          Name: 'n',
          Container: 'mp4',
          Audio: { Codec: 'AAC', BitRate: '128' },
          Video: { Codec: 'H.264', CodecOptions: { Level: '4' } },
        },
        'Level',
      ],
      [
        {
          Name: 'n',
          Container: 'mp3',
          Audio: { Codec: 'mp3', BitRate: '128' },
          Video: { Codec: 'H.264' },
        },
        'Video:Codec',
      ],
    ] as const
    for (const [body, field] of refused) {
      let error: unknown
      try {
        checkPresetRequest(body, ID)
      } catch (caught) {
        error = caught
      }
      expect(error, field).toMatchObject({ code: 'ValidationException', statusCode: 400 })
      expect((error as Error).message).toContain(field)
    }
  })
})
