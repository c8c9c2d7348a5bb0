// Packs every published package of the workspace (each non-private packages/*) as npm would
// publish it: a clean build through `prepack`, `workspace:^` rewritten, publishConfig applied.
//
//   node scripts/pack-packages.ts <destination folder>
//
// prints one line per tarball (`<package name> <tarball path>`). The consumer test and
// examples/strapi/install.sh use it, so a new package under packages/ is picked up by both.
import { execFile } from 'node:child_process'
import { readdir, readFile, rm } from 'node:fs/promises'
import { isAbsolute, join, resolve } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const ROOT = resolve(import.meta.dirname, '..')

export interface PackedPackage {
  name: string
  version: string
  /** The package's folder in the workspace. */
  dir: string
  /** The absolute path of the tarball. */
  tarball: string
}

/** The published packages of the workspace: every packages/* whose package.json is not private. */
export async function publishedPackages(): Promise<Array<{ name: string; dir: string }>> {
  const found: Array<{ name: string; dir: string }> = []
  for (const entry of await readdir(join(ROOT, 'packages'), { withFileTypes: true })) {
    if (!entry.isDirectory()) continue
    const dir = join(ROOT, 'packages', entry.name)
    let manifest: { name?: string; private?: boolean }
    try {
      manifest = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'))
    } catch {
      continue
    }
    if (manifest.private || !manifest.name) continue
    found.push({ name: manifest.name, dir })
  }
  return found.sort((a, b) => a.name.localeCompare(b.name))
}

/**
 * Removes every build output first (dist/ and the build info of each package), so that what is
 * packed is what `prepack` builds from the sources, never a stale build; then `pnpm pack`s each
 * package into `destination`.
 */
export async function packPackages(destination: string): Promise<PackedPackage[]> {
  const packages = await publishedPackages()
  for (const { dir } of packages) {
    await rm(join(dir, 'dist'), { recursive: true, force: true })
    for (const file of await readdir(dir)) {
      if (file.endsWith('.tsbuildinfo')) await rm(join(dir, file), { force: true })
    }
  }
  const packed: PackedPackage[] = []
  for (const { name, dir } of packages) {
    const { stdout } = await run('pnpm', ['pack', '--json', '--pack-destination', destination], {
      cwd: dir,
      maxBuffer: 16 * 1024 * 1024,
    })
    const report = JSON.parse(stdout.slice(stdout.indexOf('{'))) as {
      name: string
      version: string
      filename: string
    }
    const tarball = isAbsolute(report.filename)
      ? report.filename
      : join(destination, report.filename)
    packed.push({ name, version: report.version, dir, tarball })
  }
  return packed
}

if (import.meta.main) {
  const destination = process.argv[2]
  if (!destination) {
    console.error('usage: node scripts/pack-packages.ts <destination folder>')
    process.exit(2)
  }
  for (const { name, tarball } of await packPackages(resolve(destination))) {
    console.log(`${name} ${tarball}`)
  }
}
