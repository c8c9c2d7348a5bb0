export * from './engine-suite.ts'
export * from './media-fixtures.ts'
export * from './repository-suite.ts'
export * from './storage-suite.ts'
