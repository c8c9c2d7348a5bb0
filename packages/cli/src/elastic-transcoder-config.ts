import { isAbsolute, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { envList } from './env-list.ts'

/** The Elastic Transcoder API of `serve`, when `ET_API_KEYS` is set. */
export interface ElasticTranscoderConfig {
  /**
   * `ET_API_KEYS`: `ACCESS_KEY_ID:SECRET`, `ACCESS_KEY_ID:SECRET:OWNER` or
   * `ACCESS_KEY_ID:SECRET:OWNER:BUCKET+BUCKET` (the only ET_BUCKETS its pipelines may use;
   * every one without it, allowed only when all keys are one owner's), comma-separated.
   */
  keys: Array<{
    accessKeyId: string
    secretAccessKey: string
    owner: string
    buckets?: string[]
  }>
  /** `ET_BUCKETS`: `name=file:///path` (a local folder) or `name=s3` (the S3 bucket of that name). */
  buckets: Array<{ name: string; kind: 'file'; path: string } | { name: string; kind: 's3' }>
  /** How `name=s3` buckets are reached: `S3_ENDPOINT`, `S3_REGION`, `S3_FORCE_PATH_STYLE`. */
  s3: { endpoint: string | null; region: string; forcePathStyle: boolean }
  /**
   * The region of the SNS topics pipelines notify (`AWS_REGION`); the SDK's own
   * `AWS_ENDPOINT_URL_SNS` points it elsewhere.
   */
  snsRegion: string
  /**
   * `ET_SNS_TOPIC_ARNS`: the only SNS topics a pipeline may notify. The server publishes with
   * its own credentials, so every other topic is refused; never one of `SNS_TOPIC_ARNS`, the
   * topics the server itself listens to (it would publish a client's message into its own
   * event stream).
   */
  snsTopics: string[]
}

const KEY_ID = /^[A-Za-z0-9]{1,128}$/
const OWNER = /^[A-Za-z0-9._@-]{1,64}$/
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/
/** The topic ARNs ET's `Notifications` take (the plugin refuses any other form). */
const SNS_TOPIC_ARN = /^arn:aws:sns:[a-z0-9-]{1,32}:\d{12}:[A-Za-z0-9_-]{1,256}$/

/**
 * Reads the ET API settings, or `null` when `ET_API_KEYS` is unset. Problems name a pair by its
 * position, never by its secret, so that no secret reaches a log.
 */
export function elasticTranscoderConfig(
  text: (name: string) => string | null,
  s3: ElasticTranscoderConfig['s3'],
  /** `SNS_TOPIC_ARNS`, the server's own event topics, which no client may publish to. */
  serverSnsTopics: readonly string[],
  problems: string[],
): ElasticTranscoderConfig | null {
  const keysText = text('ET_API_KEYS')
  if (keysText === null) {
    if (text('ET_BUCKETS') !== null) problems.push('ET_BUCKETS is set but ET_API_KEYS is not')
    return null
  }
  const keys: ElasticTranscoderConfig['keys'] = []
  for (const [index, pair] of envList(keysText).entries()) {
    const at = `ET_API_KEYS: pair ${index + 1}`
    const [accessKeyId = '', secretAccessKey = '', ownerText = '', bucketsText, ...rest] =
      pair.split(':')
    const owner = ownerText || accessKeyId
    if (rest.length > 0 || !KEY_ID.test(accessKeyId)) {
      problems.push(
        `${at} must be ACCESS_KEY_ID:SECRET, ACCESS_KEY_ID:SECRET:OWNER or ACCESS_KEY_ID:SECRET:OWNER:BUCKET+BUCKET (the key id in letters and digits)`,
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
      keys.push({
        accessKeyId,
        secretAccessKey,
        owner,
        ...(bucketsText !== undefined ? { buckets: bucketsText.split('+') } : {}),
      })
    }
  }
  if (keys.length === 0 && problems.length === 0) problems.push('ET_API_KEYS holds no key')
  problems.push(...unscopedKeyProblems(keys))
  const buckets: ElasticTranscoderConfig['buckets'] = []
  for (const entry of envList(text('ET_BUCKETS'))) {
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
  for (const [index, key] of keys.entries()) {
    for (const name of key.buckets ?? []) {
      if (!buckets.some((b) => b.name === name)) {
        problems.push(
          `ET_API_KEYS: pair ${index + 1} names the bucket ${JSON.stringify(name)}, which ET_BUCKETS does not have`,
        )
      }
    }
  }
  return {
    keys,
    buckets,
    s3,
    snsRegion: text('AWS_REGION') ?? 'us-east-1',
    snsTopics: etSnsTopics(text('ET_SNS_TOPIC_ARNS'), serverSnsTopics, problems),
  }
}

/**
 * A key without its own buckets reaches every bucket of ET_BUCKETS: right for one owner, but
 * with several it would read and write the others' media. Then every key must name its
 * buckets, named by its access key id (never its secret).
 */
function unscopedKeyProblems(keys: ElasticTranscoderConfig['keys']): string[] {
  if (new Set(keys.map((key) => key.owner)).size < 2) return []
  return keys
    .filter((key) => !key.buckets)
    .map(
      (key) =>
        `ET_API_KEYS: ${key.accessKeyId} names no bucket: with keys of several owners, each one names its own (ACCESS_KEY_ID:SECRET:OWNER:BUCKET+BUCKET)`,
    )
}

/** `ET_SNS_TOPIC_ARNS`, each an SNS topic ARN that is not one of the server's own. */
function etSnsTopics(raw: string | null, own: readonly string[], problems: string[]): string[] {
  const topics = envList(raw)
  for (const arn of topics) {
    if (!SNS_TOPIC_ARN.test(arn)) {
      problems.push(`ET_SNS_TOPIC_ARNS: ${JSON.stringify(arn)} is not an SNS topic ARN`)
    } else if (own.includes(arn)) {
      problems.push(
        `ET_SNS_TOPIC_ARNS: ${arn} is in SNS_TOPIC_ARNS, the server's own event topics: a client may not publish there`,
      )
    }
  }
  return topics
}

/**
 * An ET bucket must not be the server's own storage: every owner's media lies there, and any
 * ET key could then read it as an `Input.Key` (or write beside it). S3: not `S3_BUCKET`; a
 * folder: neither inside `DATA_DIR` nor holding it, nor inside or holding another folder bucket.
 */
export function etBucketOverlapProblems(
  et: ElasticTranscoderConfig,
  server: { dataDir: string; storage: { kind: 'local' } | { kind: 's3'; bucket: string } },
): string[] {
  const within = (inner: string, outer: string) => {
    const path = relative(outer, inner)
    return path === '' || (!path.startsWith('..') && !isAbsolute(path))
  }
  const problems: string[] = []
  for (const bucket of et.buckets) {
    if (
      bucket.kind === 's3' &&
      server.storage.kind === 's3' &&
      bucket.name === server.storage.bucket
    ) {
      problems.push(
        `ET_BUCKETS: ${bucket.name} is S3_BUCKET, the server's own storage: name another bucket`,
      )
    }
    if (
      bucket.kind === 'file' &&
      (within(bucket.path, server.dataDir) || within(server.dataDir, bucket.path))
    ) {
      problems.push(
        `ET_BUCKETS: ${bucket.name} (${bucket.path}) overlaps DATA_DIR (${server.dataDir}), the server's own files: name a folder outside it`,
      )
    }
  }
  // A key limited to one folder bucket would reach another one that lies inside it.
  const folders = et.buckets.filter((bucket) => bucket.kind === 'file')
  for (const [i, outer] of folders.entries()) {
    for (const inner of folders.slice(i + 1)) {
      if (within(inner.path, outer.path) || within(outer.path, inner.path)) {
        problems.push(
          `ET_BUCKETS: ${outer.name} (${outer.path}) and ${inner.name} (${inner.path}) overlap: a key given one of them would reach the other's objects; name folders apart`,
        )
      }
    }
  }
  return problems
}
