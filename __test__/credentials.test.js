'use strict'
// Credential safety (SPEC §5): only a refused grant marks a Credential invalid. A refusal of
// calsync's own OAuth client is a configuration error (PROVIDER_CONFIG): reported, never written to
// Cal.com's tables, and token requests pause instead of spinning.
const test = require('node:test')
const assert = require('node:assert/strict')
const { startStack } = require('./stack')
const { CalendarSync } = require('../calsync.js')

let s
test.before(async () => {
  s = await startStack()
})
test.after(async () => {
  await s?.close()
})

async function state(cal, credentialId) {
  const { rows: [c] } = await s.db.query('SELECT invalid, key FROM "Credential" WHERE id = $1', [credentialId])
  const { rows: [sc] } = await s.db.query('SELECT "syncErrorAt", "syncErrorCount", "syncToken" FROM "SelectedCalendar" WHERE id = $1', [cal.id])
  return { invalid: c.invalid, refreshToken: c.key.refresh_token, ...sc }
}

for (const [provider, misconfigure] of [
  ['Google, wrong client secret', { googleClientSecret: 'not-the-secret' }],
  ['Google, unknown client', { googleClientId: 'someone-elses-client' }],
  ['Outlook, wrong client secret', { microsoftClientSecret: 'not-the-secret' }],
  ['Outlook, unknown app', { microsoftClientId: 'unknown-app' }],
]) {
  test(`${provider}: PROVIDER_CONFIG, the credential stays valid, nothing is written, no retry storm`, async () => {
    const outlook = provider.startsWith('Outlook')
    const user = outlook ? await s.microsoftUser() : await s.googleUser()
    const cal = outlook ? await s.outlookCalendar(user) : await s.googleCalendar(user)
    await s.sync.subscribe(cal.id)
    await s.db.query(`UPDATE "Credential" SET key = key || '{"expiry_date": 1}'::jsonb WHERE id = $1`, [user.credentialId])
    const before = await state(cal, user.credentialId)
    const wrong = await CalendarSync.connect({ ...s.options, ...misconfigure })
    try {
      const counter = outlook ? 'microsoft.token.requests' : 'google.token.requests'
      const calls = s.emu.counter(counter)
      await assert.rejects(wrong.syncCalendar(cal.id), { code: 'PROVIDER_CONFIG' })
      assert.equal(s.emu.counter(counter), calls + 1, 'asked once')
      // Later syncs (another calendar of the same provider too) fail at once without asking again.
      await assert.rejects(wrong.syncCalendar(cal.id), { code: 'PROVIDER_CONFIG' })
      assert.equal(s.emu.counter(counter), calls + 1, 'token requests pause')
      const after = await state(cal, user.credentialId)
      assert.deepEqual(after, before, 'no write to Credential or SelectedCalendar')
      assert.equal(after.invalid, false)
    } finally {
      await wrong.close()
    }
    // The right configuration works with the same credential.
    const report = await s.sync.syncCalendar(cal.id)
    assert.equal(report.full, false)
  })
}

test('a revoked grant still marks the credential invalid', async () => {
  const user = await s.googleUser()
  const cal = await s.googleCalendar(user)
  await s.sync.subscribe(cal.id)
  s.emu.google.revokeRefreshToken(user.key.refresh_token)
  await s.db.query(`UPDATE "Credential" SET key = key || '{"expiry_date": 1}'::jsonb WHERE id = $1`, [user.credentialId])
  await assert.rejects(s.sync.syncCalendar(cal.id), { code: 'PROVIDER_AUTH' })
  assert.equal((await state(cal, user.credentialId)).invalid, true)
})
