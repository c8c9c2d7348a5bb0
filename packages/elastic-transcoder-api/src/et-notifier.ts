import { randomUUID } from 'node:crypto'
import { notificationMessage } from './et-views.ts'
import type { ResolvedEtOptions } from './plugin-options.ts'
import type { EtJobRecord, EtNotifications, EtStore } from './store/et-store.ts'

export type EtNotificationState = 'PROGRESSING' | 'COMPLETED' | 'WARNING' | 'ERROR'

const TARGET: Record<EtNotificationState, keyof EtNotifications> = {
  PROGRESSING: 'Progressing',
  COMPLETED: 'Completed',
  WARNING: 'Warning',
  ERROR: 'Error',
}

/** An SNS topic ARN, as ET's `Notifications` take them. */
export const SNS_TOPIC_ARN = /^arn:aws:sns:[a-z0-9-]{1,32}:\d{12}:[A-Za-z0-9_-]{1,256}$/

/** Why a notification target is refused, or `null` when it may be used. */
export function notificationTargetProblem(
  target: string,
  allowed: (url: URL) => boolean,
): string | null {
  if (target === '' || SNS_TOPIC_ARN.test(target)) return null
  let url: URL | null = null
  try {
    url = new URL(target)
  } catch {
    // Neither an ARN nor a URL: refused below.
  }
  if (url && (url.protocol === 'http:' || url.protocol === 'https:') && allowed(url)) return null
  return `The notification target ${JSON.stringify(target)} is not an SNS topic ARN or an allowed URL.`
}

/**
 * Publishes a job's ET notification to its pipeline's target for the state: an SNS topic
 * through `snsPublish`, or an allowed HTTP URL as an SNS-style `Notification` envelope (the
 * body an SNS HTTP subscription receives, unsigned) whose `Message` is ET's JSON. Failures
 * are logged; a job never fails because its notification did.
 */
export class EtNotifier {
  readonly #options: ResolvedEtOptions
  readonly #store: EtStore

  constructor(options: ResolvedEtOptions) {
    this.#options = options
    this.#store = options.store
  }

  async notify(job: EtJobRecord, state: EtNotificationState): Promise<void> {
    const pipeline = await this.#store.getPipeline(job.pipelineId, job.owner)
    const target = pipeline?.notifications[TARGET[state]] ?? ''
    if (target === '') return
    const verb = state === 'PROGRESSING' ? 'started' : 'finished'
    const subject = `Amazon Elastic Transcoder has ${verb} transcoding job ${job.id}.`
    const message = JSON.stringify(notificationMessage(job, state))
    try {
      if (SNS_TOPIC_ARN.test(target)) {
        if (!this.#options.snsPublish) {
          this.#options.logger.warn(
            { jobId: job.id, target },
            'elastic-transcoder-api: no snsPublish configured, notification dropped',
          )
          return
        }
        await this.#options.snsPublish({ TopicArn: target, Subject: subject, Message: message })
        return
      }
      const url = new URL(target)
      // Checked again at send time: the allow-list may have changed since the pipeline was made.
      if (!this.#options.notificationUrlAllowed(url)) throw new Error('the URL is not allowed')
      const response = await fetch(url, {
        method: 'POST',
        redirect: 'manual',
        signal: AbortSignal.timeout(this.#options.notificationTimeoutMs),
        headers: {
          'content-type': 'text/plain; charset=UTF-8',
          'x-amz-sns-message-type': 'Notification',
        },
        body: JSON.stringify({
          Type: 'Notification',
          MessageId: randomUUID(),
          TopicArn: `${this.#options.arnPrefix}:pipeline/${job.pipelineId}`,
          Subject: subject,
          Message: message,
          Timestamp: new Date().toISOString(),
        }),
      })
      await response.body?.cancel()
      if (!response.ok) throw new Error(`the receiver answered ${response.status}`)
    } catch (error) {
      this.#options.logger.error(
        {
          jobId: job.id,
          state,
          target,
          error: error instanceof Error ? error.message : String(error),
        },
        'elastic-transcoder-api: a notification could not be delivered',
      )
    }
  }
}
