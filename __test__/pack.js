'use strict'
// The package as npm publishes it: the main package and this machine's platform package (with the
// binary `npm run build` made) packed into tarballs, for tests that install them as a user does.
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')

const ROOT = path.join(__dirname, '..')
const PLATFORM = 'linux-x64-gnu' // the target `npm run build` builds here
const BINARY = `calsync.${PLATFORM}.node`

const npm = (args, cwd, env = process.env) =>
  execFileSync('npm', args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })

/**
 * Packs both packages into `dir`; returns `{ main, platform }`, each npm pack's JSON entry with
 * `tarball` (its path) added.
 */
function packTarballs(dir) {
  const tarballs = path.join(dir, 'tarballs')
  fs.mkdirSync(tarballs, { recursive: true })
  const main = JSON.parse(npm(['pack', '--json', '--pack-destination', tarballs], ROOT))[0]
  const platformDir = path.join(dir, PLATFORM)
  fs.cpSync(path.join(ROOT, 'npm', PLATFORM), platformDir, { recursive: true })
  fs.copyFileSync(path.join(ROOT, BINARY), path.join(platformDir, BINARY))
  const platform = JSON.parse(npm(['pack', '--json', '--pack-destination', tarballs], platformDir))[0]
  for (const p of [main, platform]) p.tarball = path.join(tarballs, p.filename)
  return { main, platform }
}

/** Whether the binary to pack was built. */
const built = () => fs.existsSync(path.join(ROOT, BINARY))

module.exports = { ROOT, PLATFORM, BINARY, npm, packTarballs, built }
