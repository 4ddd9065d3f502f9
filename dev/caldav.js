'use strict'
// Real CalDAV servers for tests and benchmarks: Radicale and Xandikos at pinned versions, installed
// from PyPI into a Python venv on first use (like the embedded Postgres, a cache outside the
// checkout: CALSYNC_CACHE_DIR, else ~/.cache/calsync), each started on a free port with its own
// storage directory. Radicale checks Basic credentials (htpasswd, plain); Xandikos has no
// authentication of its own and ignores them.

const { spawn, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const VERSIONS = { radicale: '3.9.0', xandikos: '0.4.10' }

function cacheDir() {
  return process.env.CALSYNC_CACHE_DIR || path.join(os.homedir(), '.cache', 'calsync')
}

/** The venv's bin directory, creating the venv and installing both servers the first time. */
function ensureServers() {
  const venv = path.join(cacheDir(), `caldav-venv-radicale${VERSIONS.radicale}-xandikos${VERSIONS.xandikos}`)
  const bin = path.join(venv, 'bin')
  const marker = path.join(venv, '.installed')
  if (fs.existsSync(marker)) return bin
  fs.mkdirSync(path.dirname(venv), { recursive: true })
  const python = process.env.PYTHON || 'python3'
  process.stderr.write(`calsync: installing Radicale ${VERSIONS.radicale} and Xandikos ${VERSIONS.xandikos} into ${venv} (once)\n`)
  fs.rmSync(venv, { recursive: true, force: true })
  execFileSync(python, ['-m', 'venv', venv], { stdio: 'inherit' })
  execFileSync(path.join(bin, 'pip'), ['install', '--quiet', '--disable-pip-version-check',
    `radicale==${VERSIONS.radicale}`, `xandikos==${VERSIONS.xandikos}`], { stdio: 'inherit' })
  fs.writeFileSync(marker, new Date().toISOString())
  return bin
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/** Whether a child process has ended (by itself or by a signal). */
const exited = (child) => child.exitCode !== null || child.signalCode !== null

async function waitForPort(port, child, log, ms = 15_000) {
  const until = Date.now() + ms
  while (Date.now() < until) {
    if (exited(child)) throw new Error(`the CalDAV server exited: ${log()}`)
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1')
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`the CalDAV server did not listen on ${port}: ${log()}`)
}

/**
 * Starts one server. `kind`: 'radicale' or 'xandikos'. Returns { url, kind, user, password,
 * home (the calendar home URL), stop(), restart() } — restart keeps the storage (and its tokens).
 */
async function startCaldav(kind, { user = 'alice', password = 'alice-secret' } = {}) {
  const bin = ensureServers()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `calsync-${kind}-`))
  const port = await freePort()
  let output = ''
  const args = () => {
    if (kind === 'radicale') {
      fs.writeFileSync(path.join(dir, 'users'), `${user}:${password}\n`)
      return [path.join(bin, 'radicale'), [
        `--storage-filesystem-folder=${path.join(dir, 'data')}`, `--server-hosts=127.0.0.1:${port}`,
        '--auth-type=htpasswd', `--auth-htpasswd-filename=${path.join(dir, 'users')}`, '--auth-htpasswd-encryption=plain',
        '--logging-level=warning',
      ]]
    }
    return [path.join(bin, 'xandikos'), ['--defaults', '-d', path.join(dir, 'data'), '-l', '127.0.0.1', '-p', String(port)]]
  }
  let child
  const start = async () => {
    const [cmd, argv] = args()
    child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.on('data', (d) => { output = (output + d).slice(-4000) })
    child.stderr.on('data', (d) => { output = (output + d).slice(-4000) })
    await waitForPort(port, child, () => output)
  }
  await start()
  const url = `http://127.0.0.1:${port}`
  const stop = async () => {
    if (!child || exited(child)) return
    const gone = new Promise((r) => child.once('exit', r))
    child.kill('SIGKILL')
    await gone
  }
  return {
    kind,
    url,
    user,
    password,
    home: kind === 'radicale' ? `${url}/${user}/` : `${url}/user/calendars/`,
    stop,
    async restart() { await stop(); await start() },
    async close() { await stop(); fs.rmSync(dir, { recursive: true, force: true }) },
  }
}

/** A minimal WebDAV client for tests: Basic auth, XML bodies. */
function davClient(server) {
  const auth = 'Basic ' + Buffer.from(`${server.user}:${server.password}`).toString('base64')
  const request = async (method, url, body, headers = {}) => {
    const res = await fetch(url, {
      method,
      headers: { Authorization: auth, ...(body ? { 'Content-Type': headers['Content-Type'] || 'application/xml; charset=utf-8' } : {}), ...headers },
      body,
    })
    return { status: res.status, body: await res.text(), headers: res.headers }
  }
  return {
    request,
    /** Creates a calendar collection in the home; `timeZone` (IANA) becomes its calendar-timezone. */
    async makeCalendar(name, { timeZone } = {}) {
      const url = `${server.home}${name}/`
      const tz = timeZone
        ? `<c:calendar-timezone>BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//test//EN\r\nBEGIN:VTIMEZONE\r\nTZID:${timeZone}\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n</c:calendar-timezone>`
        : ''
      const body = `<?xml version="1.0" encoding="utf-8"?><c:mkcalendar xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:set><d:prop><d:displayname>${name}</d:displayname>${tz}</d:prop></d:set></c:mkcalendar>`
      const res = await request('MKCALENDAR', url, body)
      if (res.status !== 201) throw new Error(`MKCALENDAR ${url}: ${res.status} ${res.body}`)
      return url
    },
    async put(calendarUrl, name, ics) {
      const res = await request('PUT', `${calendarUrl}${name}`, ics, { 'Content-Type': 'text/calendar; charset=utf-8' })
      if (res.status !== 201 && res.status !== 204) throw new Error(`PUT ${name}: ${res.status} ${res.body}`)
    },
    async remove(calendarUrl, name) {
      const res = await request('DELETE', `${calendarUrl}${name}`)
      if (res.status !== 204 && res.status !== 200) throw new Error(`DELETE ${name}: ${res.status} ${res.body}`)
    },
  }
}

/**
 * A fault proxy in front of a CalDAV server, for what real servers do under load (iCloud throttles
 * with 503 and 429): `fail({ status, retryAfter, times, when })` answers the next `times` requests with
 * that status (and `Retry-After`), `drop({ times })` closes their connections without an answer,
 * `slow({ ms, times })` holds their answers back. `requests` counts what reached the proxy.
 */
async function startFaultProxy(target) {
  const http = require('node:http')
  const upstream = new URL(target)
  let fault = null
  const proxy = {
    requests: 0,
    /** `when(method, body)`, if given, picks the requests the fault applies to. */
    fail({ status, retryAfter, times = Infinity, when }) { fault = { kind: 'fail', status, retryAfter, times, when } },
    drop({ times = Infinity } = {}) { fault = { kind: 'drop', times } },
    slow({ ms, times = Infinity }) { fault = { kind: 'slow', ms, times } },
    heal() { fault = null },
  }
  const forward = (req, res, body) => {
    const out = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } }, (up) => {
      res.writeHead(up.statusCode, up.headers)
      up.pipe(res)
    })
    out.on('error', () => res.destroy())
    out.end(body)
  }
  const server = http.createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      proxy.requests++
      const body = Buffer.concat(chunks)
      const f = fault && fault.times > 0 && (!fault.when || fault.when(req.method, body.toString())) ? fault : null
      if (f) f.times--
      if (f?.kind === 'fail') {
        res.writeHead(f.status, { 'Content-Type': 'text/plain', ...(f.retryAfter != null ? { 'Retry-After': String(f.retryAfter) } : {}) })
        return res.end('try later')
      }
      if (f?.kind === 'drop') return req.socket.destroy()
      if (f?.kind === 'slow') return setTimeout(() => forward(req, res, body), f.ms)
      forward(req, res, body)
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  proxy.url = `http://127.0.0.1:${server.address().port}`
  proxy.close = () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(resolve) })
  return proxy
}

/** A value as Cal.com's `symmetricEncrypt` stores credentials: AES-256-CBC, the key's characters as
 * latin1 bytes, `hex(iv):hex(ciphertext)`. */
function symmetricEncrypt(text, key) {
  const crypto = require('node:crypto')
  const iv = crypto.randomBytes(16)
  const cipher = crypto.createCipheriv('aes256', Buffer.from(key, 'latin1'), iv)
  return `${iv.toString('hex')}:${cipher.update(text, 'utf8', 'hex')}${cipher.final('hex')}`
}

module.exports = { ensureServers, startCaldav, davClient, startFaultProxy, symmetricEncrypt, VERSIONS }
