import type { Job, TranscodeService } from '@transcodekit/core'
import type { JobView } from './schemas.ts'

/**
 * A job as the routes show it: storage keys stay inside, each complete output gets the URL to
 * read it from.
 */
export async function jobView(
  service: TranscodeService,
  job: Job,
  urlExpiresInSec: number,
): Promise<JobView> {
  const outputs = await Promise.all(
    job.outputs.map(async (output) => ({
      name: output.name,
      presetId: output.presetId,
      contentType: output.contentType,
      state: output.state,
      size: output.size,
      durationSec: output.durationSec,
      url:
        output.state === 'complete'
          ? await service.outputUrl(output, { expiresInSec: urlExpiresInSec })
          : null,
      errorCode: output.errorCode ?? null,
      errorMessage: output.errorMessage ?? null,
    })),
  )
  return {
    id: job.id,
    assetId: job.assetId,
    engine: job.engine,
    engineJobId: job.engineJobId,
    state: job.state,
    progress: job.progress,
    errorCode: job.errorCode,
    errorMessage: job.errorMessage,
    idempotencyKey: job.idempotencyKey,
    attempts: job.attempts,
    outputs,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    finishedAt: job.finishedAt,
  }
}
