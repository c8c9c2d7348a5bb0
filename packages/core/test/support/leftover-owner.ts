// A process that leaves what a worker and an upload leave mid-way (a work folder with a
// partial output, an upload spool) in the folder given, prints its tag, then waits to be killed.
import { randomUUID } from 'node:crypto'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { processTag } from '../../src/index.ts'

const folder = process.argv[2]!
const tag = processTag()
const work = await mkdtemp(join(folder, `job-${tag}-`))
await writeFile(join(work, 'partial.wav'), 'half an output')
await writeFile(join(folder, `${tag}-${randomUUID()}.upload`), 'half an upload')
console.log(JSON.stringify({ tag, pid: process.pid }))
setInterval(() => {}, 60_000)
