// `pnpm start`: the server of `transcodekit serve`, with its data in examples/server/.data.
import { fileURLToPath } from 'node:url'
import { serve } from '@transcodekit/cli'

await serve({ defaultDataDir: fileURLToPath(new URL('../.data', import.meta.url)) })
