import { randomUUID } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { memoryRepository } from '../src/repository/memory-repository.ts'
import { repositoryConformance } from '../src/testing/repository-suite.ts'

repositoryConformance('memoryRepository', async () => ({ repository: memoryRepository() }))

// The suite above also runs against one repository shared by every test, as a database
// shared between test files would be: nothing in it may assume an empty store.
const shared = memoryRepository()
repositoryConformance('memoryRepository (shared)', async () => ({ repository: shared }))

describe('memoryRepository', () => {
  it('keeps repositories apart', async () => {
    const a = memoryRepository()
    const b = memoryRepository()
    const id = randomUUID()
    await a.createAsset({
      id,
      storageKey: `originals/${id}/original.wav`,
      originalFilename: null,
      contentType: 'audio/wav',
      size: 1,
      sha256: '0'.repeat(64),
      media: { formatName: 'wav', durationSec: 1, bitRate: null, streams: [] },
      createdAt: new Date(),
    })
    expect(await a.getAsset(id)).not.toBeNull()
    expect(await b.getAsset(id)).toBeNull()
    expect((await b.listAssets()).items).toEqual([])
  })
})
