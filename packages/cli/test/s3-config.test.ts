import { openAsBlob } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeTone } from '@transcodekit/core/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type S3rverHandle, startS3rver } from '../../../test/fakes/s3rver-server.ts'
import { type RunningServer, startServer } from './server-process.ts'

/** STORAGE=s3 end to end: the example loads the AWS adapters from its environment alone. */
describe('the example server with STORAGE=s3 (s3rver)', () => {
  let dir: string
  let s3: S3rverHandle
  let server: RunningServer | null = null

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'transcodekit-example-s3-'))
    s3 = await startS3rver({ buckets: ['media-bucket'] })
  })
  afterAll(async () => {
    await server?.stop('SIGKILL')
    await s3?.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('stores the original and the outputs in the bucket and answers presigned URLs', async () => {
    server = await startServer({
      DATA_DIR: join(dir, 'data'),
      DATABASE_URL: 'memory://',
      STORAGE: 's3',
      S3_BUCKET: 'media-bucket',
      S3_ENDPOINT: s3.endpoint,
      S3_FORCE_PATH_STYLE: 'true',
      S3_PREFIX: 'uploads/',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_REGION: 'us-east-1',
    })
    const mp3 = await makeTone(join(dir, 'tone.mp3'), { seconds: 2, format: 'mp3' })
    const form = new FormData()
    form.append('presets', 'flac')
    form.append('file', await openAsBlob(mp3, { type: 'audio/mpeg' }), 'tone.mp3')
    const created = await fetch(`${server.url}/api/uploads`, { method: 'POST', body: form })
    expect(created.status).toBe(201)
    const { asset, job } = await created.json()

    const events = await (await fetch(`${server.url}/api/jobs/${job.id}/events`)).text()
    const last = JSON.parse(
      events
        .trim()
        .split('\n')
        .filter((line) => line.startsWith('data: '))
        .at(-1)!
        .slice(6),
    )
    expect(last.state).toBe('complete')
    const [output] = last.outputs
    // A presigned URL of the bucket, not the files route (which serves its HLS playlists only).
    expect(output.url).toMatch(
      new RegExp(`^${s3.endpoint}/media-bucket/uploads/${asset.id}/${job.id}/flac\\.flac\\?`),
    )
    const download = await fetch(output.url)
    expect(download.status).toBe(200)
    expect((await download.arrayBuffer()).byteLength).toBe(output.size)
    // The download URL is presigned with the name made from the upload's.
    const saved = await fetch(output.downloadUrl)
    expect(saved.status).toBe(200)
    expect(saved.headers.get('content-disposition')).toMatch(/^attachment; filename="tone\.flac"/)
    await saved.arrayBuffer()
    // The files route opens no bucket object without a signature of this server.
    const unsigned = await fetch(`${server.url}/api/files/uploads/${asset.id}/${job.id}/flac.flac`)
    expect(unsigned.status).toBe(403)
    expect((await unsigned.json()).code).toBe('TRANSCODEKIT_FILE_URL_INVALID')

    const keys = await s3.listKeys('media-bucket')
    expect(keys.sort()).toEqual(
      [`uploads/${asset.id}/${job.id}/flac.flac`, `uploads/${asset.id}/original.mp3`].sort(),
    )
    expect((await fetch(`${server.url}/api/assets/${asset.id}`, { method: 'DELETE' })).status).toBe(
      204,
    )
    expect(await s3.listKeys('media-bucket')).toEqual([])
    expect(await server.stop('SIGTERM')).toBe(0)
    server = null
  }, 120_000)
})
