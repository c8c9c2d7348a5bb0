import type { Core } from '@strapi/strapi'

export default ({ env }: Core.Config.Shared.ConfigParams) => ({
  // @transcodekit/strapi is a dependency with `strapi.kind: plugin`, so Strapi finds it by
  // itself; this entry only configures it (checked at start: a bad option stops the boot).
  transcodekit: {
    enabled: true,
    config: {
      // First match wins; an upload no rule matches (an image, a PDF) gets no job.
      rules: [
        {
          mime: 'audio/*',
          presets: env.array('TRANSCODEKIT_AUDIO_PRESETS', ['wav', 'flac', 'aac-256k']),
        },
        {
          mime: 'video/*',
          presets: env.array('TRANSCODEKIT_VIDEO_PRESETS', ['mp4-480p', 'thumbnail']),
        },
      ],
      transcoder: {
        // Default: public/uploads/transcodekit, served by Strapi under /uploads/transcodekit/.
        dataDir: env('TRANSCODEKIT_DATA_DIR', undefined),
        // Unset: jobs live in Strapi's own database (SQLite, PostgreSQL, MySQL), durable. A
        // PostgreSQL URL keeps them in a transcodekit database instead (@transcodekit/kysely).
        databaseUrl: env('TRANSCODEKIT_DATABASE_URL', null),
        worker: env.bool('TRANSCODEKIT_WORKER', true),
        concurrency: env.int('TRANSCODEKIT_CONCURRENCY', 1),
        // Set TRANSCODEKIT_S3_BUCKET to keep originals and outputs in S3 (@transcodekit/aws).
        s3: env('TRANSCODEKIT_S3_BUCKET')
          ? {
              bucket: env('TRANSCODEKIT_S3_BUCKET'),
              prefix: env('TRANSCODEKIT_S3_PREFIX', 'transcodekit/'),
              region: env('TRANSCODEKIT_S3_REGION', env('AWS_REGION', 'us-east-1')),
              endpoint: env('TRANSCODEKIT_S3_ENDPOINT', env('AWS_ENDPOINT', undefined)),
              forcePathStyle: env.bool(
                'TRANSCODEKIT_S3_FORCE_PATH_STYLE',
                env.bool('AWS_FORCE_PATH_STYLE', false),
              ),
              accessKeyId: env(
                'TRANSCODEKIT_S3_ACCESS_KEY_ID',
                env('AWS_ACCESS_KEY_ID', undefined),
              ),
              secretAccessKey: env(
                'TRANSCODEKIT_S3_SECRET_ACCESS_KEY',
                env('AWS_ACCESS_SECRET', undefined),
              ),
              publicUrl: env('TRANSCODEKIT_S3_PUBLIC_URL', undefined),
            }
          : null,
      },
      retry: {
        initialDelayMs: env.int('TRANSCODEKIT_RETRY_INITIAL_MS', 1000),
        maxDelayMs: env.int('TRANSCODEKIT_RETRY_MAX_MS', 60_000),
        maxAttempts: env.int('TRANSCODEKIT_RETRY_ATTEMPTS', 30),
      },
    },
  },
  ...(env('UPLOAD_PROVIDER', 'local') === 'aws-s3'
    ? {
        upload: {
          config: {
            provider: 'aws-s3',
            providerOptions: {
              s3Options: {
                credentials: {
                  accessKeyId: env('AWS_ACCESS_KEY_ID'),
                  secretAccessKey: env('AWS_ACCESS_SECRET'),
                },
                region: env('AWS_REGION', 'us-east-1'),
                endpoint: env('AWS_ENDPOINT', undefined),
                forcePathStyle: env.bool('AWS_FORCE_PATH_STYLE', false),
                params: {
                  Bucket: env('AWS_BUCKET'),
                  ACL: env('AWS_ACL', undefined),
                },
              },
            },
          },
        },
      }
    : {}),
})
