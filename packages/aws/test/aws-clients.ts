import { ElasticTranscoderClient } from '@aws-sdk/client-elastic-transcoder'
import { MediaConvertClient } from '@aws-sdk/client-mediaconvert'
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

/** An Elastic Transcoder client for a fake endpoint (the fake checks no signature). */
export function elasticTranscoderClient(endpoint: string): ElasticTranscoderClient {
  return new ElasticTranscoderClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIAFAKE', secretAccessKey: 'fake' },
    maxAttempts: 1,
  })
}

/** A MediaConvert client for a fake endpoint. */
export function mediaConvertClient(endpoint: string): MediaConvertClient {
  return new MediaConvertClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIAFAKE', secretAccessKey: 'fake' },
    maxAttempts: 1,
  })
}
