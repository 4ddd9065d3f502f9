'use strict'
// `node dev/prisma-check.js`: the Prisma models docs/database.md gives for calsync's tables describe
// exactly what `applySchema` creates, as Prisma itself sees it (run by .ci/run).
//
// A fresh database gets calsync's SQL (with the Cal.com tables it uses); Prisma 6 introspects it
// (`prisma db pull`); the expected schema is that introspection with calsync's models replaced by
// the documented ones; `prisma migrate diff` between the two must be empty — anything else is the
// drift a Prisma-migrated app would see (`prisma migrate dev` offering to reset the database).
//
// Prisma 6 runs here through its WebAssembly schema engine and the node-postgres driver adapter
// (its native engines are downloads this machine cannot make).

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const { startServer, createDatabase } = require('./postgres')
const { applySchema } = require('../calsync.js')

const ROOT = path.join(__dirname, '..')
const PRISMA = path.join(ROOT, 'node_modules', 'prisma', 'build', 'index.js')

const CONFIG = `import { defineConfig } from 'prisma/config'
import { PrismaPg } from '@prisma/adapter-pg'
import pg from 'pg'

// adapter-pg 6 cannot map the internal pg_catalog types the schema describer selects ("char",
// name, int2vector, regproc, xid, oidvector, pg_node_tree, regclass, regtype): they are text.
const CATALOG_TYPES = new Set([18, 19, 22, 24, 28, 30, 194, 2205, 2206])
const asText = (r: any) => {
  for (const f of r?.fields ?? []) if (CATALOG_TYPES.has(f.dataTypeID)) f.dataTypeID = 25
  return r
}
class Client extends pg.Client {
  query(...q: any[]): any {
    const cb = q.at(-1)
    if (typeof cb === 'function') q[q.length - 1] = (err: any, r: any) => cb(err, err ? r : asText(r))
    const r: any = (super.query as any)(...q)
    return r && typeof r.then === 'function' ? r.then(asText) : r
  }
}

export default defineConfig({
  experimental: { adapter: true },
  engine: 'js',
  adapter: async () => new PrismaPg(new pg.Pool({ connectionString: process.env.DATABASE_URL, Client } as any)),
  schema: 'pulled.prisma',
})
`

// The generator keeps the CLI on Prisma's query compiler (no native query engine to download).
const HEADER = `generator client {
  provider        = "prisma-client-js"
  previewFeatures = ["driverAdapters", "queryCompiler"]
  engineType      = "client"
}

datasource db {
  provider = "postgresql"
  url      = env("DATABASE_URL")
}
`

const MODELS_DOC = 'docs/database.md'

/** The documented Prisma models for calsync's tables (the one ```prisma block of docs/database.md). */
function documentedModels() {
  const doc = fs.readFileSync(path.join(ROOT, MODELS_DOC), 'utf8')
  const blocks = [...doc.matchAll(/```prisma\n([\s\S]*?)```/g)].map((m) => m[1])
  if (blocks.length !== 1) throw new Error(`${MODELS_DOC}: expected one \`\`\`prisma block, found ${blocks.length}`)
  return blocks[0]
}

/** `{ name: body }` of the model blocks of a schema. */
function models(schema) {
  return Object.fromEntries([...schema.matchAll(/^model (\w+) \{\n([\s\S]*?)^\}/gm)].map((m) => [m[1], m[2]]))
}

/**
 * The introspected schema with calsync's models swapped for the documented ones: the Cal.com models
 * keep their fields except the back-relations to calsync's models, which are rebuilt from the
 * documented models' relations (a one-to-one when the foreign key is the model's id, else a list).
 */
function expectedSchema(pulled, documented) {
  const ours = models(documented)
  const theirs = models(pulled)
  const back = {} // Cal.com model -> back-relation lines
  for (const [name, body] of Object.entries(ours)) {
    for (const m of body.matchAll(/^\s+\w+\s+(\w+)\s+@relation\(fields: \[(\w+)\]/gm)) {
      const [, target, fk] = m
      const oneToOne = new RegExp(`^\\s+${fk}\\s+\\w+\\s+@id\\b`, 'm').test(body)
      const field = name[0].toLowerCase() + name.slice(1)
      ;(back[target] ??= []).push(`  ${field} ${name}${oneToOne ? '?' : '[]'}`)
    }
  }
  const out = [HEADER]
  for (const [name, body] of Object.entries(theirs)) {
    if (ours[name]) continue
    const kept = body.split('\n').filter((line) => !Object.keys(ours).some((o) => new RegExp(`^\\s+\\w+\\s+${o}(\\[\\]|\\?)?(\\s|$)`).test(line)))
    out.push(`model ${name} {\n${[...kept.filter((l) => l.trim()), ...(back[name] ?? [])].join('\n')}\n}\n`)
  }
  for (const m of pulled.matchAll(/^enum \w+ \{\n[\s\S]*?^\}/gm)) out.push(`${m[0]}\n`)
  out.push(documented)
  return out.join('\n')
}

async function main() {
  const log = (m) => process.stderr.write(`${m}\n`)
  const server = await startServer({ log })
  const db = await createDatabase(server.url, 'calsync_prisma_check')
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'calsync-prisma-'))
  try {
    const { Client } = require('pg')
    const pg = new Client({ connectionString: db.url })
    await pg.connect()
    const v = Number((await pg.query('SHOW server_version_num')).rows[0].server_version_num)
    await pg.end()
    if (v >= 180000) {
      throw new Error('Prisma 6.19\'s WebAssembly schema engine cannot describe PostgreSQL 18 (it panics): set DATABASE_URL to a PostgreSQL 17 or older server (.ci/run uses the machine\'s PostgreSQL 15)')
    }
    await applySchema({ databaseUrl: db.url })
    fs.writeFileSync(path.join(work, 'prisma.config.ts'), CONFIG)
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(work, 'node_modules'))
    const env = { ...process.env, DATABASE_URL: db.url, PRISMA_HIDE_UPDATE_MESSAGE: '1', CHECKPOINT_DISABLE: '1' }
    const prisma = (args) => execFileSync(process.execPath, [PRISMA, ...args], { cwd: work, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
    fs.writeFileSync(path.join(work, 'pulled.prisma'), HEADER)
    log('prisma db pull (the database after applySchema)')
    const pulled = prisma(['db', 'pull', '--print'])
    fs.writeFileSync(path.join(work, 'pulled.prisma'), HEADER + '\n' + pulled.slice(pulled.search(/^model /m)))
    fs.writeFileSync(path.join(work, 'expected.prisma'), expectedSchema(pulled, documentedModels()))
    log(`prisma migrate diff (the database → the documented models in ${MODELS_DOC})`)
    let diff
    try {
      diff = prisma(['migrate', 'diff', '--from-schema-datamodel', 'pulled.prisma', '--to-schema-datamodel', 'expected.prisma', '--script', '--exit-code'])
    } catch (e) {
      if (e.status !== 2) throw new Error(`prisma migrate diff failed:\n${e.stderr}`)
      console.error(`The documented Prisma models (${MODELS_DOC}) differ from what applySchema creates; Prisma would migrate:\n\n${e.stdout}`)
      process.exitCode = 1
      return
    }
    const n = Object.keys(models(documentedModels())).length
    console.log(`The ${n} documented Prisma models (${MODELS_DOC}) match the database applySchema creates: prisma migrate diff is empty.${diff.trim() ? `\n${diff.trim()}` : ''}`)
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
    await db.drop()
    await server.stop()
  }
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e.message)
    process.exit(1)
  })
}

module.exports = { expectedSchema, models }
