// A Node helper for tests against gregor (README, "Testing with gregor"): starts a gregor on
// free loopback ports with its admin listener, and gives its control plane as methods. No
// dependencies beyond Node (>= 18). The binary is `options.binary`, else $GREGOR_BIN, else
// `gregor` on PATH.
//
//   const { startGregor } = require('./gregor')
//   const g = await startGregor({ args: ['--clock', 'manual'] })
//   const kafka = new Kafka({ brokers: [g.bootstrap] })
//   beforeEach(() => g.reset())
//   await g.fault({ api: 'Produce', times: 1, action: 'error', error: 'NOT_LEADER_OR_FOLLOWER' })
//   await g.advanceClock(46000)
//   await g.snapshot('before'); ...; await g.restore('before')
//   await g.stop()
'use strict'

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const http = require('node:http')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

function freePort () {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

// An admin request answered with an error status: `.status` and `.body` (decoded JSON).
class GregorError extends Error {
  constructor (status, body) {
    super(`gregor answered ${status}: ${JSON.stringify(body)}`)
    this.status = status
    this.body = body
  }
}

class Gregor {
  constructor (binary, args, port, adminPort) {
    this.binary = binary
    this.args = args
    this.port = port
    this.adminPort = adminPort
    this.bootstrap = `127.0.0.1:${port}`
  }

  // One admin API request: the decoded JSON answer, or a GregorError for a status >= 400.
  request (method, pathname, body, query) {
    const params = new URLSearchParams()
    for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null) params.set(k, String(v))
    const qs = params.toString()
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body))
    return new Promise((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1',
        port: this.adminPort,
        method,
        path: pathname + (qs ? `?${qs}` : ''),
        headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {}
      }, res => {
        const chunks = []
        res.on('data', c => chunks.push(c))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString()
          const json = text ? JSON.parse(text) : null
          if (res.statusCode >= 400) reject(new GregorError(res.statusCode, json))
          else resolve(json)
        })
      })
      req.on('error', reject)
      req.setTimeout(120000, () => req.destroy(new Error(`admin ${method} ${pathname} timed out`)))
      if (data) req.write(data)
      req.end()
    })
  }

  // Back to empty: topics (or only their records), groups, offsets, transactions.
  reset ({ keepTopics = false } = {}) { return this.request('POST', '/v1/reset', { keep_topics: keepTopics }) }
  // Topics, records and committed offsets from a seed document.
  seed (document) { return this.request('POST', '/v1/seed', document) }
  // Records the broker's whole state as snapshot `name` (replacing one of that name).
  snapshot (name) { return this.request('POST', '/v1/snapshot', { name }) }
  // Restarts the broker onto snapshot `name`: clients' connections close and they reconnect to
  // the snapshot's state. Resolves once the broker serves again.
  restore (name) { return this.request('POST', '/v1/restore', { name }) }
  // The snapshots kept: each one's `name`, `created_ms` and `bytes`.
  async snapshots () { return (await this.request('GET', '/v1/snapshots')).snapshots }
  deleteSnapshot (name) { return this.request('DELETE', `/v1/snapshots/${encodeURIComponent(name)}`) }
  // Arms a fault rule; answers it with its `id`.
  fault (rule) { return this.request('POST', '/v1/faults', rule) }
  async faults () { return (await this.request('GET', '/v1/faults')).faults }
  clearFaults () { return this.request('DELETE', '/v1/faults') }
  async clock () { return (await this.request('GET', '/v1/clock')).now_ms }
  // Moves a --clock manual broker's clock: timeouts it decides expire at once.
  async advanceClock (ms) { return (await this.request('POST', '/v1/clock/advance', { ms })).now_ms }
  // The requests the broker served, oldest first.
  async journal ({ clientId, api, limit } = {}) {
    return (await this.request('GET', '/v1/journal', undefined, { client_id: clientId, api, limit })).entries
  }

  // Resolves once a condition holds ({ group: 'g', state: 'Stable', members: 2 }, { topic: 't',
  // partition: 0, high_watermark: 10 }, ...); rejects with GregorError 408 if it does not in time.
  await (condition, { timeoutMs = 10000 } = {}) {
    return this.request('GET', '/v1/await', undefined, { ...condition, timeout_ms: timeoutMs })
  }

  stop () {
    const proc = this.proc
    this.proc = null
    const done = proc && proc.exitCode === null
      ? new Promise(resolve => proc.once('exit', resolve))
      : Promise.resolve()
    if (proc && proc.exitCode === null) proc.kill('SIGTERM')
    return done.then(() => fs.rmSync(this.dir, { recursive: true, force: true }))
  }
}

// Starts a gregor; resolves once its admin listener answers.
async function startGregor ({ binary, args = [], startTimeoutMs = 30000 } = {}) {
  const bin = binary || process.env.GREGOR_BIN || 'gregor'
  const g = new Gregor(bin, args, await freePort(), await freePort())
  g.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gregor-test-'))
  const log = fs.openSync(path.join(g.dir, 'gregor.log'), 'a')
  g.proc = spawn(bin, ['--listen', g.bootstrap, '--data-dir', path.join(g.dir, 'data'),
    '--admin-listen', `127.0.0.1:${g.adminPort}`, ...args], { stdio: ['ignore', log, log] })
  fs.closeSync(log)
  let exited = null
  g.proc.once('exit', code => { exited = code })
  g.proc.once('error', e => { exited = e.message })
  const deadline = Date.now() + startTimeoutMs
  for (;;) {
    if (exited !== null) {
      const tail = fs.readFileSync(path.join(g.dir, 'gregor.log'), 'utf8').slice(-4000)
      throw new Error(`gregor exited (${exited}): ${tail}`)
    }
    try {
      if ((await g.request('GET', '/v1/healthz')).status === 'ok') return g
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`gregor did not start in ${startTimeoutMs} ms: ${e.message}`)
    }
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

module.exports = { startGregor, Gregor, GregorError }
