import { localStorage, type Storage } from '@transcodekit/core'
import type { FastifyInstance } from 'fastify'
import type { Services } from './config.ts'
import type { ElasticTranscoderConfig } from './elastic-transcoder-config.ts'

/**
 * Mounts the Elastic Transcoder API at the server's root (`/2012-09-25/…`, the SDKs' own
 * paths): its buckets as configured (taking any key S3 takes: `keyRule: 'bucket'`), its pipelines and jobs in the server's database (in
 * memory with `DATABASE_URL=memory://`), pipeline notifications published to SNS topics.
 * Notification targets that are HTTP URLs are refused: the server would call any URL a client
 * names.
 */
export async function registerElasticTranscoderApi(
  app: FastifyInstance,
  config: ElasticTranscoderConfig,
  services: Services,
  /** `MAX_JOBS_PER_OWNER` of the server; 0: no cap. */
  maxJobsPerOwner: number,
): Promise<void> {
  const { default: elasticTranscoderApi, memoryEtStore } = await import(
    '@transcodekit/elastic-transcoder-api'
  )
  const buckets: Record<string, Storage> = {}
  const s3Buckets = config.buckets.filter((b) => b.kind === 's3')
  if (s3Buckets.length > 0) {
    const [{ S3Client }, { s3Storage }] = await Promise.all([
      import('@aws-sdk/client-s3'),
      import('@transcodekit/aws'),
    ])
    const client = new S3Client({
      region: config.s3.region,
      forcePathStyle: config.s3.forcePathStyle,
      ...(config.s3.endpoint ? { endpoint: config.s3.endpoint } : {}),
    })
    app.addHook('onClose', async () => client.destroy())
    for (const { name } of s3Buckets) {
      buckets[name] = s3Storage({ client, bucket: name, keyRule: 'bucket' })
    }
  }
  for (const bucket of config.buckets) {
    if (bucket.kind === 'file') {
      buckets[bucket.name] = localStorage({ root: bucket.path, keyRule: 'bucket' })
    }
  }
  const { PublishCommand, SNSClient } = await import('@aws-sdk/client-sns')
  const sns = new SNSClient({ region: config.snsRegion })
  app.addHook('onClose', async () => sns.destroy())
  const store = services.database
    ? (await import('@transcodekit/elastic-transcoder-api/kysely')).kyselyEtStore(services.database)
    : memoryEtStore()
  await app.register(elasticTranscoderApi, {
    service: services.service,
    keys: config.keys,
    buckets,
    store,
    snsPublish: (input) => sns.send(new PublishCommand(input)),
    snsTopicAllowed: (arn) => config.snsTopics.includes(arn),
    maxActiveJobsPerOwner: maxJobsPerOwner || Number.POSITIVE_INFINITY,
    logger: app.log,
  })
}
