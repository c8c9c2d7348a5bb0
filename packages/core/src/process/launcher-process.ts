// The launcher: a small Node process that spawns ffprobe and ffmpeg for the app, so that the
// app's size does not slow each spawn (fork(2) copies the page tables of the process that
// spawns: ~7 ms in a 400 MB server, on its main thread). It imports nothing of the app, runs
// each `spawn` it is sent with stdin ignored and stdout/stderr piped, streams their output
// back, forwards kills, and reports each child's exit. When the app goes away (SIGTERM from the
// kernel or the app, or the IPC channel closing) it kills its children and exits.
import { type ChildProcess, spawn } from 'node:child_process'
import type { LauncherEvent, LauncherRequest } from './launcher-protocol.ts'

const children = new Map<number, ChildProcess>()

function send(event: LauncherEvent, then?: () => void): void {
  if (!process.connected) return
  process.send?.(event, undefined, undefined, () => then?.())
}

function start(id: number, command: string, args: string[]): void {
  let child: ChildProcess
  try {
    child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException
    send({ type: 'error', id, message, ...(code ? { code } : {}) })
    send({ type: 'close', id, code: null, signal: null })
    return
  }
  children.set(id, child)
  child.once('spawn', () => send({ type: 'spawn', id, pid: child.pid as number }))
  child.on('error', (error: NodeJS.ErrnoException) =>
    send({
      type: 'error',
      id,
      message: error.message,
      ...(error.code ? { code: error.code } : {}),
      ...(error.errno !== undefined ? { errno: error.errno } : {}),
      ...(error.syscall ? { syscall: error.syscall } : {}),
    }),
  )
  for (const [fd, stream] of [
    [1, child.stdout],
    [2, child.stderr],
  ] as const) {
    stream?.on('data', (chunk: Buffer) => {
      // A slow app: stop reading until the channel has taken this chunk (the child blocks).
      stream.pause()
      send({ type: 'data', id, fd, chunk }, () => stream.resume())
    })
  }
  child.once('exit', (code, signal) => send({ type: 'exit', id, code, signal }))
  child.once('close', (code, signal) => {
    children.delete(id)
    send({ type: 'close', id, code, signal })
  })
}

process.on('message', (request: LauncherRequest) => {
  if (request.type === 'spawn') start(request.id, request.command, request.args)
  else if (request.type === 'kill') children.get(request.id)?.kill(request.signal)
})

// The app went away (its channel closed), stopped us (`close()`), or died: with `setpriv
// --pdeathsig TERM` the kernel sends SIGTERM the moment it does, even on its SIGKILL.
const leave = () => {
  for (const child of children.values()) child.kill('SIGKILL')
  process.exit(0)
}
process.once('disconnect', leave)
process.once('SIGTERM', leave)
