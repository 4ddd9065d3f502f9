'use strict'
// A sample of the randomized fault matrix (fault-matrix.js); `npm run soak` runs the full one.
const test = require('node:test')
const assert = require('node:assert/strict')
const { runMatrix } = require('./fault-matrix')

const scenarios = Number(process.env.FAULT_SCENARIOS ?? 20)
const seed = Number(process.env.FAULT_SEED ?? Math.floor(Math.random() * 1e9))

test(`fault matrix sample: ${scenarios} scenarios end with zero divergences, no leaked channel, no phantom cancellation (seed ${seed})`, { timeout: 900_000 }, async (t) => {
  const figures = await runMatrix({ scenarios, seed, restartEvery: 10, log: (l) => t.diagnostic(l) })
  t.diagnostic(JSON.stringify(figures))
  assert.equal(figures.scenarios, scenarios)
  assert.equal(figures.restarts, Math.floor(scenarios / 10))
  assert.equal(figures.divergences, 0, `seed ${seed}`)
  assert.equal(figures.leakedChannels, 0, `seed ${seed}`)
  assert.equal(figures.phantomCancellations, 0, `seed ${seed}`)
  assert.equal(figures.replaysThatAddedSubscriptions, 0, `seed ${seed}`)
  // CALSYNC_TEST_REPLICA=1: the checks' reads went through the standby (and were equal).
  if (process.env.CALSYNC_TEST_REPLICA === '1') assert.ok(figures.replicaReads > 0, 'reads were served by the replica')
})
