import { type ClientRequest, request as httpRequest, type IncomingMessage } from 'node:http'

export interface SseEvent {
  id: string | null
  event: string
  data: string
}

export interface SseStream {
  response: IncomingMessage
  /** The next event, or `null` once the stream has ended. */
  next(): Promise<SseEvent | null>
  close(): void
}

/** Opens `url` as a server-sent event stream (GET) and parses its events as they arrive. */
export function openEventStream(
  url: string,
  headers: Record<string, string> = {},
): Promise<SseStream> {
  return new Promise((resolve, reject) => {
    const request: ClientRequest = httpRequest(url, { headers })
    request.on('error', reject)
    request.on('response', (response) => {
      const queued: Array<SseEvent | null> = []
      const waiting: Array<(event: SseEvent | null) => void> = []
      const push = (event: SseEvent | null) => {
        const taker = waiting.shift()
        if (taker) taker(event)
        else queued.push(event)
      }
      let buffer = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        buffer += chunk
        let end = buffer.indexOf('\n\n')
        while (end !== -1) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const event: SseEvent = { id: null, event: 'message', data: '' }
          const data: string[] = []
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) event.id = line.slice(4)
            else if (line.startsWith('event: ')) event.event = line.slice(7)
            else if (line.startsWith('data: ')) data.push(line.slice(6))
          }
          event.data = data.join('\n')
          if (event.data !== '') push(event)
          end = buffer.indexOf('\n\n')
        }
      })
      response.on('end', () => push(null))
      response.on('error', () => push(null))
      resolve({
        response,
        next: () =>
          queued.length > 0
            ? Promise.resolve(queued.shift() ?? null)
            : new Promise((taker) => waiting.push(taker)),
        close: () => request.destroy(),
      })
    })
    request.end()
  })
}
