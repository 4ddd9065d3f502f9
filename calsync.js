'use strict'
// The package entry: the generated native binding (index.js) with one addition. Errors raised in
// Rust carry their stable code as a message prefix ("SCHEMA_MISMATCH: ..."), because napi gives
// async rejections only generic status codes; here that prefix becomes `err.code`.

const native = loadBinding()

/**
 * The generated loader (index.js), with its failure explained: when this platform's package is
 * missing, napi's loader blames an npm bug; the usual causes are an install that skipped optional
 * dependencies, a node_modules copied from another OS, or a bundler that inlined the package.
 */
function loadBinding() {
  try {
    return require('./index.js')
  } catch (e) {
    if (!/Cannot find native binding/.test(String(e?.message))) throw e
    const glibc = process.platform !== 'linux' || Boolean(process.report?.getReport?.().header?.glibcVersionRuntime)
    const abi = process.platform === 'linux' ? (glibc ? '-gnu' : '-musl') : process.platform === 'win32' ? '-msvc' : ''
    const name = `calsync-${process.platform}-${process.arch}${abi}`
    const { version, optionalDependencies } = require('./package.json')
    const supported = Object.keys(optionalDependencies ?? {})
    const message = supported.includes(name)
      ? `calsync's native binding for this platform is not installed: it ships in the package ${name}, an optional dependency of calsync. ` +
        `Install it (npm install ${name}@${version}), or reinstall calsync without --omit=optional / --no-optional, on the OS and CPU it runs on ` +
        `(a node_modules copied from another machine lacks it). With Next.js, list 'calsync' in serverExternalPackages so it is not bundled.`
      : `calsync has no native binding for ${process.platform}-${process.arch}${abi}; it ships for: ${supported.map((p) => p.slice('calsync-'.length)).join(', ')}.`
    throw Object.assign(new Error(message, { cause: e }), { code: 'NATIVE_BINDING_MISSING' })
  }
}

const CODE_PREFIX = /^([A-Z][A-Z_]+): /
// napi's own argument-conversion failures (a number where a string belongs, ...) are bad input too.
const NAPI_INPUT_ERRORS = new Set([
  'InvalidArg', 'ObjectExpected', 'StringExpected', 'NameExpected', 'FunctionExpected', 'NumberExpected',
  'BooleanExpected', 'ArrayExpected', 'BigintExpected', 'DateExpected',
])
// Methods that return a value rather than a Promise.
const SYNC_METHODS = new Set(['progress', 'shiftClockForTesting', 'onBookingChanges'])

function withCode(err, fallback) {
  if (err instanceof Error) {
    const m = CODE_PREFIX.exec(err.message)
    if (m) {
      err.code = m[1]
      err.message = err.message.slice(m[0].length)
      if (typeof err.stack === 'string') err.stack = err.stack.replace(m[0], '')
    } else if (NAPI_INPUT_ERRORS.has(err.code) || (fallback && !err.code)) {
      err.code = 'INVALID_ARGUMENT'
    }
  }
  return err
}

function wrap(fn, sync) {
  if (sync) {
    return function (...args) {
      try {
        return fn.apply(this, args)
      } catch (e) {
        throw withCode(e)
      }
    }
  }
  return async function (...args) {
    let pending
    try {
      pending = fn.apply(this, args)
    } catch (e) {
      // An async native method throws synchronously only while converting its arguments.
      throw withCode(e, true)
    }
    try {
      return await pending
    } catch (e) {
      throw withCode(e)
    }
  }
}

const NativeCalendarSync = native.CalendarSync

/**
 * `CalendarSync` as index.d.ts declares it, with errors that carry a stable `code`. Instances made
 * by the native factories are re-parented onto this class, so the wrapped methods apply.
 */
class CalendarSync extends NativeCalendarSync {}
for (const name of Object.getOwnPropertyNames(NativeCalendarSync.prototype)) {
  const fn = NativeCalendarSync.prototype[name]
  if (name === 'constructor' || typeof fn !== 'function') continue
  CalendarSync.prototype[name] = wrap(fn, SYNC_METHODS.has(name))
}
/**
 * Busy blocks from the cache for `[timeMin, timeMax)`: `{ busy: [{ start, end, selectedCalendarId,
 * source }], served, uncached: [{ id, reason }], servedBy, servedFromLegacy, shadow? }`. The native read answers in a compact form
 * (one string of times, one typed array of calendar indexes); the objects are built here, where
 * V8 makes them far faster than N-API can.
 */
CalendarSync.prototype.getCachedAvailability = async function getCachedAvailability(args) {
  const p = await this.getCachedAvailabilityPacked(args)
  const times = p.times === '' ? [] : p.times.split(',')
  const busy = new Array(p.calendar.length)
  for (let i = 0; i < busy.length; i++) {
    const c = p.calendar[i]
    busy[i] = { start: times[2 * i], end: times[2 * i + 1], selectedCalendarId: p.calendars[c], source: p.sources[c] }
  }
  const out = { busy, served: p.served, uncached: p.uncached, servedBy: p.servedBy }
  if (p.servedFromLegacy) out.servedFromLegacy = p.servedFromLegacy
  if (p.shadow) out.shadow = p.shadow
  return out
}

/**
 * The `logger` option as the binding takes it: one function called with each entry, which calls
 * `logger[level](fields, message)` (pino's and console's order). A logger without that method, or
 * one that throws, costs the entry, never the process.
 */
function logSink(logger) {
  if (logger === undefined || logger === null || typeof logger === 'function') return logger
  if (typeof logger !== 'object') return logger // the binding rejects it with INVALID_ARGUMENT
  return (entry) => {
    const method = logger[entry.level]
    if (typeof method !== 'function') return
    try {
      method.call(logger, entry.fields, entry.message)
    } catch {
      // a host logger that fails must not take calsync (or the host) down with it
    }
  }
}
const withLogSink = (options) =>
  options && typeof options === 'object' && 'logger' in options ? { ...options, logger: logSink(options.logger) } : options

const adopt = (value) =>
  value instanceof NativeCalendarSync ? Object.setPrototypeOf(value, CalendarSync.prototype) : value
for (const name of Object.getOwnPropertyNames(NativeCalendarSync)) {
  const fn = NativeCalendarSync[name]
  if (typeof fn !== 'function' || ['length', 'name', 'prototype'].includes(name)) continue
  const bound = fn.bind(NativeCalendarSync)
  const wrapped = wrap(name === 'connect' ? (options, ...rest) => bound(withLogSink(options), ...rest) : bound, SYNC_METHODS.has(name))
  const value = SYNC_METHODS.has(name)
    ? (...args) => adopt(wrapped(...args))
    : async (...args) => adopt(await wrapped(...args))
  // The native statics are read-only, so an inherited one cannot be shadowed by assignment.
  Object.defineProperty(CalendarSync, name, { value, writable: true, configurable: true })
}

const out = { ...native, CalendarSync }
for (const [name, value] of Object.entries(native)) {
  if (typeof value === 'function' && value !== NativeCalendarSync && !/^[A-Z]/.test(name)) {
    out[name] = wrap(value, SYNC_METHODS.has(name))
  }
}
module.exports = out
// Spelled out so that Node's CommonJS export detection sees them: `import { CalendarSync } from
// 'calsync'` in an ES module. (__test__/install.test.js checks every name index.d.ts exports.)
module.exports.CalendarSync = out.CalendarSync
module.exports.applySchema = out.applySchema
module.exports.shiftClockForTesting = out.shiftClockForTesting
module.exports.withCalsync = require('./calendar.js').withCalsync
