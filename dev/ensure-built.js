'use strict'
// Builds the native addon when it is missing or older than the Rust sources, so `npm test` and
// `npm run demo` work on a fresh clone without rebuilding on every run.

const fs = require('node:fs')
const path = require('node:path')
const { execSync } = require('node:child_process')

const root = path.join(__dirname, '..')
const SOURCES = ['src', 'sql', 'Cargo.toml', 'Cargo.lock', 'build.rs']

function newest(p) {
  const st = fs.statSync(p)
  if (!st.isDirectory()) return st.mtimeMs
  return Math.max(0, ...fs.readdirSync(p).map((f) => newest(path.join(p, f))))
}

const binary = fs.readdirSync(root).find((f) => /^calsync\..+\.node$/.test(f))
const sources = Math.max(...SOURCES.filter((s) => fs.existsSync(path.join(root, s))).map((s) => newest(path.join(root, s))))
if (!binary || fs.statSync(path.join(root, binary)).mtimeMs < sources) {
  console.error(binary ? 'calsync: Rust sources changed; rebuilding the addon' : 'calsync: building the native addon (first run)')
  execSync('npx napi build --platform --release', { cwd: root, stdio: 'inherit' })
}
