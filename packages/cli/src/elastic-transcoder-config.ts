import { isAbsolute } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The Elastic Transcoder API of `serve`, when `ET_API_KEYS` is set. */
export interface ElasticTranscoderConfig {
  /** `ET_API_KEYS`: `ACCESS_KEY_ID:SECRET` or `ACCESS_KEY_ID:SECRET:OWNER`, comma-separated. */
  keys: Array<{ accessKeyId: string; secretAccessKey: string; owner: string }>
  /** `ET_BUCKETS`: `name=file:///path` (a local folder) or `name=s3` (the S3 bucket of that name). */
  buckets: Array<{ name: string; kind: 'file'; path: string } | { name: string; kind: 's3' }>
  /** How `name=s3` buckets are reached: `S3_ENDPOINT`, `S3_REGION`, `S3_FORCE_PATH_STYLE`. */
  s3: { endpoint: string | null; region: string; forcePathStyle: boolean }
  /**
   * The region of the SNS topics pipelines notify (`AWS_REGION`); the SDK's own
   * `AWS_ENDPOINT_URL_SNS` points it elsewhere.
   */
  snsRegion: string
}

const KEY_ID = /^[A-Za-z0-9]{1,128}$/
const OWNER = /^[A-Za-z0-9._@-]{1,64}$/
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/

/**
 * Reads the ET API settings, or `null` when `ET_API_KEYS` is unset. Problems name a pair by its
 * position, never by its secret, so that no secret reaches a log.
 */
export function elasticTranscoderConfig(
  text: (name: string) => string | null,
  s3: ElasticTranscoderConfig['s3'],
  problems: string[],
): ElasticTranscoderConfig | null {
  const keysText = text('ET_API_KEYS')
  if (keysText === null) {
    if (text('ET_BUCKETS') !== null) problems.push('ET_BUCKETS is set but ET_API_KEYS is not')
    return null
  }
  const keys: ElasticTranscoderConfig['keys'] = []
  for (const [index, pair] of list(keysText).entries()) {
    const at = `ET_API_KEYS: pair ${index + 1}`
    const [accessKeyId = '', secretAccessKey = '', owner = accessKeyId, ...rest] = pair.split(':')
    if (rest.length > 0 || !KEY_ID.test(accessKeyId)) {
      problems.push(
        `${at} must be ACCESS_KEY_ID:SECRET or ACCESS_KEY_ID:SECRET:OWNER (the key id in letters and digits)`,
      )
    } else if (secretAccessKey.length < 16 || /\s/.test(secretAccessKey)) {
      problems.push(
        `${at}: the secret has at least 16 characters, without spaces (make one with: openssl rand -hex 24)`,
      )
    } else if (!OWNER.test(owner)) {
      problems.push(`${at}: the owner has 1 to 64 letters, digits, or . _ @ -`)
    } else if (keys.some((key) => key.accessKeyId === accessKeyId)) {
      problems.push(`${at}: this access key id is given twice`)
    } else {
      keys.push({ accessKeyId, secretAccessKey, owner })
    }
  }
  if (keys.length === 0 && problems.length === 0) problems.push('ET_API_KEYS holds no key')
  const buckets: ElasticTranscoderConfig['buckets'] = []
  for (const entry of list(text('ET_BUCKETS') ?? '')) {
    const equals = entry.indexOf('=')
    const name = entry.slice(0, equals)
    const target = entry.slice(equals + 1)
    if (equals <= 0 || !BUCKET.test(name)) {
      problems.push(
        `ET_BUCKETS: ${JSON.stringify(entry)} must be name=file:///path or name=s3, with an S3 bucket name`,
      )
    } else if (buckets.some((b) => b.name === name)) {
      problems.push(`ET_BUCKETS: the bucket ${name} is given twice`)
    } else if (target === 's3') {
      buckets.push({ name, kind: 's3' })
    } else if (target.startsWith('file://')) {
      let path = ''
      try {
        path = fileURLToPath(target)
      } catch {
        // Reported below.
      }
      if (isAbsolute(path)) buckets.push({ name, kind: 'file', path })
      else problems.push(`ET_BUCKETS: ${name}=${target} is not a file:/// URL of an absolute path`)
    } else {
      problems.push(`ET_BUCKETS: ${name}=${target}: a bucket is file:///path or s3`)
    }
  }
  if (buckets.length === 0)
    problems.push('ET_API_KEYS is set: ET_BUCKETS must name at least one bucket')
  return { keys, buckets, s3, snsRegion: text('AWS_REGION') ?? 'us-east-1' }
}

function list(raw: string): string[] {
  return raw
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '')
}
