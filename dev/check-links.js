'use strict'
// `node dev/check-links.js`: every relative link in the Markdown of the repository root, docs/ and
// examples/ points at a file that exists and, when it names an anchor, at a heading of that file
// (run by .ci/run). Links to http(s):// and mailto: are not followed; links in fenced code blocks
// and inline code are not links. Prints one line per broken link and exits 1, or a count.

const fs = require('node:fs')
const path = require('node:path')

const ROOT = path.join(__dirname, '..')
const SKIP_DIRS = new Set(['node_modules', 'target', '.git', '.next'])

/** The Markdown files checked: the root's, and docs/ and examples/ recursively. */
function markdownFiles() {
  const files = []
  const walk = (dir, deep) => {
    if (!fs.existsSync(dir)) return
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name)
      if (entry.isDirectory() && deep && !SKIP_DIRS.has(entry.name)) walk(full, deep)
      else if (entry.isFile() && entry.name.endsWith('.md')) files.push(full)
    }
  }
  walk(ROOT, false)
  walk(path.join(ROOT, 'docs'), true)
  walk(path.join(ROOT, 'examples'), true)
  return files.sort()
}

/** The file's lines outside fenced code blocks, as [lineNumber, text] pairs. */
function proseLines(text) {
  const out = []
  let fence = null // the opening marker (``` or ~~~, possibly longer) while inside a block
  text.split('\n').forEach((line, i) => {
    const m = line.match(/^ {0,3}(`{3,}|~{3,})/)
    if (fence) {
      if (m && m[1][0] === fence[0] && m[1].length >= fence.length && !line.slice(m[0].length).trim()) fence = null
    } else if (m) fence = m[1]
    else out.push([i + 1, line])
  })
  return out
}

/** GitHub's anchor for a heading's text: lower case, punctuation but `-` and `_` dropped, spaces → `-`. */
function slug(heading) {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // a link's text only
    .replace(/<[^>]+>/g, '') // inline HTML
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-')
}

const anchorCache = new Map()
/** Every anchor of a Markdown file: its headings (duplicates get -1, -2, …) and HTML ids. */
function anchors(file) {
  if (anchorCache.has(file)) return anchorCache.get(file)
  const seen = new Map()
  const found = new Set()
  for (const [, line] of proseLines(fs.readFileSync(file, 'utf8'))) {
    const h = line.match(/^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$/)
    if (h) {
      const base = slug(h[1])
      const n = seen.get(base) ?? 0
      seen.set(base, n + 1)
      found.add(n ? `${base}-${n}` : base)
    }
    for (const a of line.matchAll(/<a\s+(?:name|id)="([^"]+)"/g)) found.add(a[1])
  }
  anchorCache.set(file, found)
  return found
}

/** Why a link from `file` is broken, or null when it is not. */
function problem(file, target) {
  const hash = target.indexOf('#')
  const linkPath = decodeURIComponent(hash < 0 ? target : target.slice(0, hash))
  const anchor = hash < 0 ? null : decodeURIComponent(target.slice(hash + 1))
  const dest = !linkPath ? file : path.join(linkPath.startsWith('/') ? ROOT : path.dirname(file), linkPath)
  if (!fs.existsSync(dest)) return `${path.relative(ROOT, dest)} does not exist`
  if (anchor === null || !dest.endsWith('.md') || !fs.statSync(dest).isFile()) return null
  if (!anchors(dest).has(anchor)) return `no heading with anchor #${anchor} in ${path.relative(ROOT, dest)}`
  return null
}

const LINK = /!?\[(?:[^[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/g

function main() {
  const files = markdownFiles()
  const broken = []
  let checked = 0
  for (const file of files) {
    for (const [n, line] of proseLines(fs.readFileSync(file, 'utf8'))) {
      const prose = line.replace(/(`+)[\s\S]*?\1/g, (code) => ' '.repeat(code.length)) // inline code
      for (const m of prose.matchAll(LINK)) {
        const target = m[1]
        if (!target || /^(https?:|mailto:)/i.test(target)) continue
        checked++
        const why = problem(file, target)
        if (why) broken.push(`${path.relative(ROOT, file)}:${n}: ${target} — ${why}`)
      }
    }
  }
  if (broken.length) {
    console.error(broken.join('\n'))
    console.error(`${broken.length} broken link${broken.length === 1 ? '' : 's'} (of ${checked} checked in ${files.length} files)`)
    process.exit(1)
  }
  console.log(`${checked} links checked in ${files.length} files`)
}

if (require.main === module) main()

module.exports = { slug, anchors, proseLines }
