import {
  isTerminal,
  type Job,
  type JobState,
  type MetricsRecorder,
  type Output,
  type QueueDepth,
  type TranscodeService,
  type WebhookDeliveryOutcome,
  type WebhookDeliveryState,
} from '@transcodekit/core'
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'

export interface PrometheusMetricsOptions {
  service: TranscodeService
  /** Jobs per state, read at each scrape (from the database: every process's jobs). */
  jobCounts: () => Promise<Record<JobState, number>>
  /** The queue's messages, read at each scrape; left out when the queue cannot tell. */
  queueDepth?: () => Promise<QueueDepth>
}

export interface PrometheusMetrics {
  registry: Registry
  /** For the parts that count what they see first: uploads, webhook deliveries. */
  recorder: Required<MetricsRecorder>
  /** Stops following the service's jobs. */
  close(): void
}

/** Seconds from a job's creation to its end: a short clip takes seconds, a film hours. */
const DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14_400]
/** Error codes are ours (`TIMEOUT`, `OUTPUT_TOO_LARGE`, …); anything else is one label. */
const ERROR_CODE = /^[A-Z][A-Z0-9_]{0,63}$/

/**
 * The server's Prometheus metrics, on a registry of its own (never prom-client's global one,
 * which an app embedding the server may use). Gauges of the whole system (jobs by state, the
 * queue) are read from the database when scraped; the rest counts what this process sees: the
 * jobs that end (also those a worker in another process runs, seen through the job event
 * channel), its uploads, and the webhook deliveries reported to `recorder`.
 */
export function prometheusMetrics(options: PrometheusMetricsOptions): PrometheusMetrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'transcodekit_process_' })
  new Gauge({
    name: 'transcodekit_jobs',
    help: 'Jobs in each state, in the database (every process)',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      for (const [state, count] of Object.entries(await options.jobCounts())) {
        this.set({ state }, count)
      }
    },
  })
  if (options.queueDepth) {
    const read = options.queueDepth
    new Gauge({
      name: 'transcodekit_queue_messages',
      help: 'Queue messages waiting for a worker and running, across every worker',
      labelNames: ['status'],
      registers: [registry],
      async collect() {
        const depth = await read()
        this.set({ status: 'waiting' }, depth.waiting)
        this.set({ status: 'running' }, depth.running)
      },
    })
  }
  const durations = new Histogram({
    name: 'transcodekit_job_duration_seconds',
    help: 'Seconds from creation to end of the jobs that completed, per engine and preset (a job counts once under each of its presets)',
    labelNames: ['engine', 'preset'],
    buckets: DURATION_BUCKETS,
    registers: [registry],
  })
  const ended = new Counter({
    name: 'transcodekit_jobs_ended_total',
    help: 'Jobs that ended, per engine and final state',
    labelNames: ['engine', 'state'],
    registers: [registry],
  })
  const ffmpegFailures = new Counter({
    name: 'transcodekit_ffmpeg_failures_total',
    help: 'Jobs of the ffmpeg engine that failed, per error code',
    labelNames: ['code'],
    registers: [registry],
  })
  const uploaded = new Counter({
    name: 'transcodekit_uploaded_bytes_total',
    help: 'Bytes of the uploads stored as assets',
    registers: [registry],
  })
  const deliveries = new Counter({
    name: 'transcodekit_webhook_deliveries_total',
    help: 'Webhook delivery attempts, per outcome (delivered, retrying, failed)',
    labelNames: ['outcome'],
    registers: [registry],
  })
  for (const outcome of ['delivered', 'retrying', 'failed']) deliveries.inc({ outcome }, 0)

  const jobEnded = (job: Job) => {
    ended.inc({ engine: job.engine, state: job.state })
    if (job.state === 'complete') {
      const seconds = ((job.finishedAt ?? job.updatedAt).getTime() - job.createdAt.getTime()) / 1000
      for (const preset of new Set(job.outputs.map(presetLabel))) {
        durations.observe({ engine: job.engine, preset }, Math.max(0, seconds))
      }
    }
    if (job.state === 'error' && job.engine === 'ffmpeg') {
      const code = job.errorCode && ERROR_CODE.test(job.errorCode) ? job.errorCode : 'OTHER'
      ffmpegFailures.inc({ code })
    }
  }
  const unsubscribe = options.service.subscribe(({ job }) => {
    if (isTerminal(job.state)) jobEnded(job)
  })

  return {
    registry,
    recorder: {
      bytesUploaded: (bytes) => {
        if (Number.isFinite(bytes) && bytes > 0) uploaded.inc(bytes)
      },
      webhookDelivery: (outcome) => deliveries.inc({ outcome }),
    },
    close: unsubscribe,
  }
}

/**
 * An output's preset as a label: a catalog preset by its id, every custom preset as `custom`
 * (each has an id of its own, an Elastic Transcoder one `et-<id>`: the series would grow
 * with every preset made).
 */
function presetLabel(output: Output): string {
  return output.preset ? 'custom' : output.presetId
}

/** A webhook delivery's state after an attempt, as the attempt's outcome. */
export function webhookOutcome(state: WebhookDeliveryState): WebhookDeliveryOutcome {
  return state === 'pending' ? 'retrying' : state
}
