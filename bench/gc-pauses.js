'use strict'
// This process's garbage-collection pauses on the high-resolution clock shared across processes
// (performance.timeOrigin + now), for telling a process's own stalls from calsync's when tracing.
const { PerformanceObserver } = require('node:perf_hooks')

/** Starts recording; `pausedMs(from, to)` is the time spent collecting between the two instants. */
function watchGcPauses() {
  const pauses = []
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) pauses.push([performance.timeOrigin + e.startTime, performance.timeOrigin + e.startTime + e.duration])
    if (pauses.length > 10000) pauses.splice(0, 5000)
  })
  observer.observe({ entryTypes: ['gc'] })
  return {
    pausedMs: (from, to) => pauses.reduce((ms, [a, b]) => ms + Math.max(0, Math.min(b, to) - Math.max(a, from)), 0),
    stop: () => observer.disconnect(),
  }
}

module.exports = { watchGcPauses }
