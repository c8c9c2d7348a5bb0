// A process that spawns `sleep` through a launcher of its own and prints both pids as JSON,
// then waits to be killed (the test kills it and checks that both die with it), or with the
// argument `exit`, exits by itself at once.
import { ProcessLauncher } from '../../src/process/process-launcher.ts'

const launcher = new ProcessLauncher()
const child = launcher.spawn('sleep', ['300'])
child.once('spawn', () => {
  console.log(JSON.stringify({ launcher: launcher.pid, child: child.pid }))
  if (process.argv[2] === 'exit') process.exit(0)
})
child.once('error', (error) => {
  console.error(error)
  process.exit(1)
})
