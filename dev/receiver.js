'use strict'
// A stand-in for the app's Next.js webhook routes: an HTTP server that hands each request to
// CalendarSync and sends its answer back verbatim. Tests and the demo give its URL to the emulator.

const http = require('node:http')

const GOOGLE_PATH = '/api/webhooks/calendar-subscription/google_calendar'
const MICROSOFT_PATH = '/api/webhooks/calendar-subscription/office365_calendar'

/**
 * Starts the server on a free loopback port; `getSync()` returns the CalendarSync to use.
 * `googleOptions` / `microsoftOptions` go to `handleGoogleWebhook` / `handleMicrosoftWebhook` (for
 * example `{ waitForSync: true }`).
 */
async function startReceiver(getSync, { googleOptions, microsoftOptions } = {}) {
  const server = http.createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', async () => {
      const u = new URL(req.url, 'http://receiver')
      const request = { headers: req.headers, query: u.search, body: Buffer.concat(chunks).toString() }
      try {
        let out = { status: 404, headers: {}, body: '' }
        if (u.pathname === GOOGLE_PATH) out = await getSync().handleGoogleWebhook(request, googleOptions)
        if (u.pathname === MICROSOFT_PATH) out = await getSync().handleMicrosoftWebhook(request, microsoftOptions)
        res.writeHead(out.status, out.headers)
        res.end(out.body)
      } catch (e) {
        res.writeHead(500)
        res.end(String(e.code ?? 'ERROR'))
      }
    })
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((r) => {
      server.closeAllConnections()
      server.close(r)
    }),
  }
}

module.exports = { startReceiver, GOOGLE_PATH, MICROSOFT_PATH }
