// `pnpm worker`: the worker of `transcodekit worker`, on the data of `pnpm start`.
import { fileURLToPath } from 'node:url'
import { runWorker } from '@transcodekit/cli'

await runWorker({ defaultDataDir: fileURLToPath(new URL('../.data', import.meta.url)) })
