// A server process on the folders given (storage root, upload spool, ffmpeg work), for tests
// that kill it: prints its port once it listens and the start sweeps are done.
import {
  createTranscoder,
  ffmpegEngine,
  localStorage,
  memoryRepository,
  watchLeftovers,
} from '@transcodekit/core'
import Fastify from 'fastify'
import transcodekit from '../../src/index.ts'

const [root, spool, work] = process.argv.slice(2) as [string, string, string]
const service = createTranscoder({
  storage: localStorage({ root }),
  engine: ffmpegEngine({ tmpDir: work }),
  repository: memoryRepository(),
  tmpDir: spool,
  worker: { concurrency: 1 },
})
const app = Fastify({ logger: false })
await app.register(transcodekit, { service, uploadIdleTimeoutMs: 120_000 })
await app.listen({ port: 0, host: '127.0.0.1' })
// The sweeps the storage, the service and the engine started when they were made.
await Promise.all([`${root}/.tmp`, spool, work].map((folder) => watchLeftovers(folder)))
console.log(JSON.stringify({ port: (app.server.address() as { port: number }).port }))
