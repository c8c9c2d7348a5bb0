import type { Asset, Job, Owner } from '../model.ts'
import type { WebhookEventType } from '../ports/webhooks.ts'

export const WEBHOOK_EVENT_TYPES: readonly WebhookEventType[] = [
  'job.submitted',
  'job.progressing',
  'job.complete',
  'job.error',
  'job.canceled',
  'asset.created',
  'asset.deleted',
]

/** Something that happened, to be sent to every endpoint that wants its type. */
export interface WebhookEvent {
  type: WebhookEventType
  /** The owner of the job or asset: a delivery carries it, and per-owner endpoints filter on it. */
  owner: Owner
  /** The job or asset id: with `type`, what makes the event happen once. */
  subjectId: string
  data: Record<string, unknown>
  occurredAt: Date
}

/** The event of a job's current state (`job.complete` for a complete job). */
export function jobWebhookEvent(job: Job): WebhookEvent {
  return {
    type: `job.${job.state}`,
    owner: job.owner,
    subjectId: job.id,
    occurredAt: job.state === 'submitted' ? job.createdAt : job.updatedAt,
    data: {
      id: job.id,
      owner: job.owner,
      assetId: job.assetId,
      engine: job.engine,
      state: job.state,
      progress: job.progress,
      errorCode: job.errorCode,
      errorMessage: job.errorMessage,
      idempotencyKey: job.idempotencyKey,
      attempts: job.attempts,
      // Storage keys stay inside; a receiver asks the API for URLs, which expire.
      outputs: job.outputs.map((output) => ({
        name: output.name,
        presetId: output.presetId,
        contentType: output.contentType,
        state: output.state,
        size: output.size,
        durationSec: output.durationSec,
        errorCode: output.errorCode ?? null,
        errorMessage: output.errorMessage ?? null,
      })),
      createdAt: job.createdAt.toISOString(),
      updatedAt: job.updatedAt.toISOString(),
      finishedAt: job.finishedAt?.toISOString() ?? null,
    },
  }
}

/** `asset.created` or `asset.deleted`. */
export function assetWebhookEvent(
  type: 'asset.created' | 'asset.deleted',
  asset: Asset,
  at: Date = new Date(),
): WebhookEvent {
  return {
    type,
    owner: asset.owner,
    subjectId: asset.id,
    occurredAt: type === 'asset.created' ? asset.createdAt : at,
    data: {
      id: asset.id,
      owner: asset.owner,
      originalFilename: asset.originalFilename,
      contentType: asset.contentType,
      size: asset.size,
      sha256: asset.sha256,
      durationSec: asset.media?.durationSec ?? null,
      createdAt: asset.createdAt.toISOString(),
    },
  }
}

/** The Standard Webhooks body: `{ type, timestamp, data }`. */
export function webhookPayload(event: WebhookEvent): string {
  return JSON.stringify({
    type: event.type,
    timestamp: event.occurredAt.toISOString(),
    data: event.data,
  })
}
