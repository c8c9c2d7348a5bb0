// A process that spawns `sleep` through a launcher of its own and prints both pids as JSON,
// then waits to be killed: the test kills it (SIGKILL) and checks that both die with it.
import { ProcessLauncher } from '../../src/process/process-launcher.ts'

const launcher = new ProcessLauncher()
const child = launcher.spawn('sleep', ['300'])
child.once('spawn', () => {
  console.log(JSON.stringify({ launcher: launcher.pid, child: child.pid }))
})
child.once('error', (error) => {
  console.error(error)
  process.exit(1)
})
