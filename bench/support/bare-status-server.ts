// The status benchmark's baseline, run as a process of its own (as the server is): a bare
// Fastify 5 app with one route, `GET /jobs/:id`, running on a `pg` Pool of 10 connections the
// SQL the kysely repository's getJob runs (given in BENCH_SQL, with `$1` the job id), and
// answering its row as JSON. No logging, no schema.
//
//   DATABASE_URL=… BENCH_SQL='select …' node bench/support/bare-status-server.ts
//
// Prints `listening http://127.0.0.1:<port>/` once it listens.
import { createRequire } from 'node:module'

// Fastify as the plugin's package has it, pg as the kysely package has it (the root depends
// on neither).
const fastifyRequire = createRequire(
  new URL('../../packages/fastify/package.json', import.meta.url),
)
const kyselyRequire = createRequire(new URL('../../packages/kysely/package.json', import.meta.url))
const Fastify: typeof import('fastify').default = fastifyRequire('fastify')
const { Pool }: typeof import('pg') = kyselyRequire('pg')

const sql = process.env.BENCH_SQL
if (!sql) throw new Error('BENCH_SQL is required')
const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: 10 })
const app = Fastify({ logger: false })

app.get<{ Params: { id: string } }>('/jobs/:id', async (request, reply) => {
  const { rows } = await pool.query(sql, [request.params.id])
  if (rows.length === 0) return reply.code(404).send({ code: 'NOT_FOUND' })
  return rows[0]
})

const address = await app.listen({ host: '127.0.0.1', port: 0 })
console.log(`listening ${address}/`)
process.once('SIGTERM', () => {
  void app.close().then(() => pool.end())
})
