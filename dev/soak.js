'use strict'
// `npm run soak [-- --scenarios=N --seed=S --restart-every=K]`: the full randomized fault matrix
// (__test__/fault-matrix.js), 1000 scenarios by default, Postgres restarted every 50th scenario (it
// starts an embedded Postgres of its own for that; 0 uses DATABASE_URL and restarts nothing). Prints progress and the figures, writes them to bench/soak.json, and
// exits non-zero on any divergence, leaked channel, phantom cancellation or replay that added a subscription (the seed to reproduce it is printed).
const fs = require('node:fs')
const path = require('node:path')
const { runMatrix } = require('../__test__/fault-matrix')

const arg = (name, fallback) => {
  const hit = process.argv.find((a) => a.startsWith(`--${name}=`))
  return hit ? Number(hit.split('=')[1]) : fallback
}

async function main() {
  const scenarios = arg('scenarios', 1000)
  const seed = arg('seed', Math.floor(Math.random() * 1e9))
  console.log(`fault matrix: ${scenarios} scenarios, seed ${seed}`)
  const restartEvery = arg('restart-every', 50)
  const figures = await runMatrix({ scenarios, seed, restartEvery, keepGoing: true, log: (l) => console.log(l) })
  const out = { date: new Date().toISOString(), seed, ...figures }
  fs.writeFileSync(path.join(__dirname, '..', 'bench', 'soak.json'), JSON.stringify(out, null, 2) + '\n')
  console.log(JSON.stringify(out, null, 2))
  if (figures.divergences || figures.leakedChannels || figures.phantomCancellations || figures.replaysThatAddedSubscriptions) {
    console.error(`FAILED: ${figures.divergences} divergences, ${figures.leakedChannels} leaked channels, ${figures.phantomCancellations} phantom cancellations, ${figures.replaysThatAddedSubscriptions} replays that added a subscription (seed ${seed})`)
    process.exit(1)
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
