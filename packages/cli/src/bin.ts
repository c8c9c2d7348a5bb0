#!/usr/bin/env node
import { runCli } from './cli-runner.ts'

const code = await runCli(process.argv.slice(2))
if (code !== null) process.exitCode = code
