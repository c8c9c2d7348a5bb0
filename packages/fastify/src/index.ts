export { parseRange } from './http/byte-range.ts'
export { ifRangeHolds, isNotModified, type Validators } from './http/conditional-request.ts'
export { contentDisposition, isInlineType } from './http/content-disposition.ts'
export {
  type FileUrlQuery,
  FileUrlSigner,
  type SignFileUrlOptions,
} from './http/file-url-signer.ts'
export * from './http-errors.ts'
export * from './plugin-options.ts'
export * from './schemas.ts'
export { default, default as transcodekit } from './transcodekit-plugin.ts'
export type { TypedInstance } from './typed-instance.ts'
