import { type FetchClient, isFetchError, useFetchClient } from '@strapi/strapi/admin'
import { useEffect, useMemo, useRef, useState } from 'react'
import { PLUGIN_ID } from './plugin-id.ts'

export type JobState = 'submitted' | 'progressing' | 'complete' | 'error' | 'canceled'

export interface AdminOutput {
  preset: string
  url: string | null
  mime: string
  state: JobState
  size: number | null
  durationSec: number | null
}

export interface AdminJob {
  id: string
  fileId: string | null
  state: JobState
  progress: number
  attempts: number
  error: { code: string; message: string } | null
  outputs: AdminOutput[]
  createdAt: string
  updatedAt: string
  finishedAt: string | null
}

export interface AdminFile {
  file: { id: number; name: string; mime: string; url: string | null }
  record: { state: string; error: { code: string; message: string } | null } | null
  job: AdminJob | null
}

export const isEnded = (state: JobState) =>
  state === 'complete' || state === 'error' || state === 'canceled'

/** The plugin's admin routes (server: src/admin-api/routes.ts). */
export function useTranscodekitApi() {
  const client: FetchClient = useFetchClient()
  return useMemo(
    () => ({
      listJobs: async (cursor: string | null, signal?: AbortSignal) => {
        const query = cursor ? `?cursor=${encodeURIComponent(cursor)}` : ''
        const response = await client.get<{
          data: { items: AdminJob[]; nextCursor: string | null }
        }>(`/${PLUGIN_ID}/jobs${query}`, { signal })
        return response.data.data
      },
      getFile: async (fileId: string, signal?: AbortSignal) =>
        (await client.get<{ data: AdminFile }>(`/${PLUGIN_ID}/files/${fileId}`, { signal })).data
          .data,
      retry: async (jobId: string) =>
        (await client.post<{ data: AdminJob }>(`/${PLUGIN_ID}/jobs/${jobId}/retry`)).data.data,
      cancel: async (jobId: string) =>
        (await client.post<{ data: AdminJob }>(`/${PLUGIN_ID}/jobs/${jobId}/cancel`)).data.data,
    }),
    [client],
  )
}

/** A readable message for a failed request: the server's `code: message` when it sent one. */
export function describeFailure(error: unknown): string {
  if (isFetchError(error)) {
    const answer = error.response?.data?.error
    if (answer?.message) return answer.code ? `${answer.code}: ${answer.message}` : answer.message
  }
  return error instanceof Error ? error.message : String(error)
}

/** How often a page asks again while something it shows is still running. */
export const POLL_MS = 1000

/**
 * Loads `load()` now, then again every POLL_MS while `keepPolling(value)` holds; one request
 * at a time, stopped on unmount. `reload()` asks at once (after an action).
 */
export function usePolling<T>(
  load: (signal: AbortSignal) => Promise<T>,
  keepPolling: (value: T) => boolean,
  deps: readonly unknown[],
) {
  const [value, setValue] = useState<T | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [tick, setTick] = useState(0)
  const latest = useRef({ load, keepPolling })
  latest.current = { load, keepPolling }

  // biome-ignore lint/correctness/useExhaustiveDependencies: deps are the caller's, tick reloads
  useEffect(() => {
    const controller = new AbortController()
    let timer: ReturnType<typeof setTimeout> | undefined
    const step = async () => {
      try {
        const next = await latest.current.load(controller.signal)
        if (controller.signal.aborted) return
        setValue(next)
        setError(null)
        if (latest.current.keepPolling(next)) timer = setTimeout(step, POLL_MS)
      } catch (failure) {
        if (controller.signal.aborted) return
        setError(describeFailure(failure))
        timer = setTimeout(step, POLL_MS * 5)
      }
    }
    void step()
    return () => {
      controller.abort()
      clearTimeout(timer)
    }
  }, [...deps, tick])

  return { value, error, reload: () => setTick((n) => n + 1) }
}
