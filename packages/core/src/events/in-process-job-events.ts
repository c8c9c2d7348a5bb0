import { EventEmitter } from 'node:events'
import type { JobChangeNotice, JobEventChannel } from '../ports/job-events.ts'

/**
 * A `JobEventChannel` within one process: the default, for a service that runs its own jobs
 * (or several services sharing one repository in one process, as tests do).
 */
export function inProcessJobEvents(): JobEventChannel {
  const emitter = new EventEmitter()
  emitter.setMaxListeners(0)
  return {
    async publish(notice: JobChangeNotice) {
      emitter.emit('notice', notice)
    },
    subscribe(listener) {
      emitter.on('notice', listener)
      return () => emitter.off('notice', listener)
    },
    async close() {
      emitter.removeAllListeners()
    },
  }
}
