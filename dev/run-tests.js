'use strict'
// `npm test [-- files…]`: every test file under __test__/, or just the ones named, one at a time.
const { spawnSync } = require('node:child_process')

const files = process.argv.slice(2)
const run = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-force-exit', ...(files.length ? files : ['__test__/'])], {
  stdio: 'inherit',
  // calsync's own logs (warnings and errors on stderr by default) would bury the test output: the
  // suite's expected failures are many. Tests that check logging pass a logger or a level.
  env: { CALSYNC_LOG: 'off', ...process.env },
})
process.exit(run.status ?? 1)
