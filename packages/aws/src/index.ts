export * from './elastic-transcoder-engine.ts'
export * from './mediaconvert-engine.ts'
export * from './s3-storage.ts'
export * from './sns-verifier.ts'
