import type { EtJobRecord, EtOutputRecord, EtPipelineRecord } from './store/et-store.ts'

/** The `Pipeline` object of Elastic Transcoder's API. */
export function pipelineView(pipeline: EtPipelineRecord, arnPrefix: string) {
  return {
    Id: pipeline.id,
    Arn: `${arnPrefix}:pipeline/${pipeline.id}`,
    Name: pipeline.name,
    Status: pipeline.status,
    InputBucket: pipeline.inputBucket,
    OutputBucket: pipeline.outputBucket,
    Role: pipeline.role,
    ...(pipeline.awsKmsKeyArn ? { AwsKmsKeyArn: pipeline.awsKmsKeyArn } : {}),
    Notifications: pipeline.notifications,
    ContentConfig: { Bucket: pipeline.outputBucket, Permissions: [] },
    ThumbnailConfig: { Bucket: pipeline.outputBucket, Permissions: [] },
  }
}

function outputView(output: EtOutputRecord) {
  return {
    Id: output.id,
    Key: output.key,
    PresetId: output.presetId,
    ...(output.segmentDuration ? { SegmentDuration: output.segmentDuration } : {}),
    Status: output.status,
    ...(output.statusDetail ? { StatusDetail: output.statusDetail } : {}),
    ...(output.durationSec !== null ? { Duration: output.durationSec } : {}),
    ...(output.durationMillis !== null ? { DurationMillis: output.durationMillis } : {}),
    ...(output.fileSize !== null ? { FileSize: output.fileSize } : {}),
    ...(output.width !== null ? { Width: output.width } : {}),
    ...(output.height !== null ? { Height: output.height } : {}),
  }
}

/** The `Job` object of Elastic Transcoder's API. */
export function jobView(job: EtJobRecord, arnPrefix: string) {
  const outputs = job.outputs.map(outputView)
  return {
    Id: job.id,
    Arn: `${arnPrefix}:job/${job.id}`,
    PipelineId: job.pipelineId,
    Input: job.input,
    Inputs: [job.input],
    ...(outputs.length === 1 ? { Output: outputs[0] } : {}),
    Outputs: outputs,
    OutputKeyPrefix: job.outputKeyPrefix,
    Playlists: job.playlists,
    Status: job.status,
    ...(job.userMetadata ? { UserMetadata: job.userMetadata } : {}),
    Timing: {
      SubmitTimeMillis: job.submittedAt.getTime(),
      ...(job.startedAt ? { StartTimeMillis: job.startedAt.getTime() } : {}),
      ...(job.finishedAt ? { FinishTimeMillis: job.finishedAt.getTime() } : {}),
    },
  }
}

/**
 * The notification message Elastic Transcoder publishes for a job (lowerCamel keys), with
 * `state` one of PROGRESSING, COMPLETED, WARNING, ERROR.
 */
export function notificationMessage(job: EtJobRecord, state: string) {
  const failed = job.outputs.find((o) => o.status === 'Error')
  const errorCode = failed?.statusDetail ? Number(failed.statusDetail.slice(0, 4)) : Number.NaN
  return {
    state,
    version: '2012-09-25',
    jobId: job.id,
    pipelineId: job.pipelineId,
    input: { key: job.input.Key },
    ...(state === 'ERROR' && failed?.statusDetail
      ? {
          ...(Number.isInteger(errorCode) ? { errorCode } : {}),
          messageDetails: failed.statusDetail,
        }
      : {}),
    outputKeyPrefix: job.outputKeyPrefix,
    outputs: job.outputs.map((o) => ({
      id: o.id,
      presetId: o.presetId,
      key: o.key,
      ...(o.segmentDuration ? { segmentDuration: Number(o.segmentDuration) } : {}),
      status: o.status,
      ...(o.statusDetail ? { statusDetail: o.statusDetail } : {}),
      ...(o.durationSec !== null ? { duration: o.durationSec } : {}),
      ...(o.width !== null ? { width: o.width, height: o.height } : {}),
    })),
    ...(job.userMetadata ? { userMetadata: job.userMetadata } : {}),
  }
}
