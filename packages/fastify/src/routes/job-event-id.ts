import { createHash } from 'node:crypto'
import type { Job } from '@transcodekit/core'

/** Longest `Last-Event-ID` looked at; ours are 16 characters. */
const MAX_EVENT_ID = 64

/**
 * The SSE event id of a job as it is now. Every event of a job stream is a whole snapshot of
 * the job, so a client that has the snapshot of the latest id has missed nothing: the id names
 * the snapshot (when it was written, and what it says), and a reconnect whose `Last-Event-ID`
 * is not the current one gets the current snapshot first.
 */
export function jobEventId(job: Job): string {
  return createHash('sha256')
    .update(
      JSON.stringify([
        job.updatedAt.getTime(),
        job.state,
        job.progress,
        job.outputs.map((o) => [o.name, o.state, o.size]),
      ]),
    )
    .digest('base64url')
    .slice(0, 16)
}

/** The `Last-Event-ID` a reconnecting client sent, or `null` (none, or not one of ours). */
export function lastEventId(header: string | string[] | undefined): string | null {
  const value = Array.isArray(header) ? header[0] : header
  if (!value || value.length > MAX_EVENT_ID) return null
  return value
}
