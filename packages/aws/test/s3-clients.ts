import { S3Client } from '@aws-sdk/client-s3'

/** An S3 client for s3rver: path-style, its fixed credentials, no aws-chunked stream bodies. */
export function s3rverClient(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
  })
}
