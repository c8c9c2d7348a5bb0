// Starting and stopping the servers a benchmark measures, each in a process of its own.
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'

export interface ChildServer {
  child: ChildProcess
  port: number
}

/**
 * Runs `node <args>` and resolves once it prints `http://127.0.0.1:<port>`; after that its
 * output (request logs) is read and dropped, so that the pipe never fills.
 */
export async function startChild(
  args: string[],
  env: Record<string, string>,
): Promise<ChildServer> {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let output = ''
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (data: Buffer) => {
      output += data
      const match = /http:\/\/127\.0\.0\.1:(\d+)/.exec(output)
      if (match) {
        child.stdout!.off('data', onData)
        child.stdout!.resume()
        child.off('exit', onEarlyExit)
        resolve(Number(match[1]))
      }
    }
    const onEarlyExit = (code: number | null) =>
      reject(new Error(`${args.at(-1)} exited with ${code}: ${output}`))
    child.stdout!.on('data', onData)
    child.once('exit', onEarlyExit)
  })
  return { child, port }
}

export async function stopChild({ child }: ChildServer): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGTERM')
  await once(child, 'exit')
}
