// Shared helpers for gregor's Node client suite: every test drives the real client against the
// broker at GREGOR_BOOTSTRAP, which run.sh starts (gregor, or Apache Kafka with
// KAFKA_REFERENCE_LIBS=DIR). Every wait is on a condition with a deadline, never a fixed sleep.
'use strict'

const crypto = require('node:crypto')
const fs = require('node:fs')
const { Kafka, logLevel } = require('kafkajs')

const bootstrap = process.env.GREGOR_BOOTSTRAP
if (!bootstrap) {
  console.error('GREGOR_BOOTSTRAP is not set: run the suite through compat/node/run.sh')
  process.exit(2)
}

// kafkajs logs (warnings and errors, which include the expected errors of the error cases) go to
// NODE_COMPAT_LOG, a file run.sh prints the end of when a test fails.
const logFile = process.env.NODE_COMPAT_LOG
const logCreator = () => ({ namespace, level, label, log }) => {
  if (!logFile) return
  const { message, ...extra } = log
  fs.appendFileSync(
    logFile,
    `${new Date().toISOString()} ${label} [${namespace}] ${message} ${JSON.stringify(extra)}\n`
  )
}

// Every client made by a test, disconnected by cleanup() (the after() hook of each file).
const clients = []

function kafka(opts = {}) {
  return new Kafka({
    clientId: 'gregor-compat-node',
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    logCreator,
    connectionTimeout: 5000,
    requestTimeout: 30000,
    retry: { initialRetryTime: 100, retries: 8 },
    ...opts,
  })
}

async function connected(client) {
  clients.push(client)
  await client.connect()
  return client
}

const admin = (opts, kafkaOpts) => connected(kafka(kafkaOpts).admin(opts))
const producer = (opts, kafkaOpts) => connected(kafka(kafkaOpts).producer(opts))

// A consumer with short group timings (so joins and rebalances take under a second or two).
function consumer(opts, kafkaOpts) {
  return connected(
    kafka(kafkaOpts).consumer({
      sessionTimeout: 10000,
      rebalanceTimeout: 10000,
      heartbeatInterval: 500,
      maxWaitTimeInMs: 200,
      ...opts,
    })
  )
}

async function cleanup() {
  await Promise.allSettled(clients.splice(0).map(c => c.disconnect()))
}

// A topic/group/transactional id unique to this test and run.
function uniqueName(t, what) {
  const name = t.name.toLowerCase().replace(/[^a-z0-9._-]+/g, '-')
  return `nd-${name}-${what}-${crypto.randomBytes(4).toString('hex')}`.slice(0, 200)
}

// Polls cond() (sync or async) until it returns a truthy value, and returns that value; fails
// with `what` after timeoutMs.
async function waitFor(what, cond, timeoutMs = 30000, pollMs = 50) {
  const deadline = Date.now() + timeoutMs
  let last
  for (;;) {
    try {
      const v = await cond()
      if (v) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last}` : ''}`)
    }
    await new Promise(r => setTimeout(r, pollMs))
  }
}

// Creates a topic and waits until the metadata shows every partition with a leader (on Kafka the
// broker's metadata cache follows the controller a little later, and kafkajs's own wait gives up on
// UNKNOWN_TOPIC_OR_PARTITION)...
async function createTopic(adm, topic, numPartitions = 1, configEntries = undefined) {
  const created = await adm.createTopics({
    topics: [{ topic, numPartitions, replicationFactor: 1, configEntries }],
    timeout: 15000,
    waitForLeaders: false,
  })
  if (!created) throw new Error(`topic ${topic} already existed`)
  await waitFor(`metadata for the new topic ${topic}`, async () => {
    const m = await adm.fetchTopicMetadata({ topics: [topic] })
    const parts = m.topics[0]?.partitions || []
    if (parts.length !== numPartitions || !parts.every(p => p.leader >= 0 && p.partitionErrorCode === 0)) {
      return false
    }
    // ...and until the leader answers ListOffsets (Kafka says NOT_LEADER_FOR_PARTITION a moment longer).
    return (await adm.fetchTopicOffsets(topic)).length === numPartitions
  })
}

// Consumes from `topic` with a fresh consumer (its own group unless opts.groupId) until `n`
// messages arrived; returns them (each with its partition) in arrival order. Fails on timeout.
// Tests that must show a record is absent write a marker after it and read up to the marker.
async function consumeN(topic, n, opts = {}, { timeoutMs = 30000, fromBeginning = true } = {}) {
  const c = await consumer({ groupId: `nd-reader-${crypto.randomBytes(4).toString('hex')}`, ...opts })
  const got = []
  await c.subscribe({ topics: [topic], fromBeginning })
  await c.run({
    eachMessage: async ({ partition, message }) => {
      got.push({ partition, ...message })
    },
  })
  try {
    await waitFor(`${n} messages from ${topic} (have ${got.length})`, () => got.length >= n, timeoutMs)
  } finally {
    await c.disconnect()
  }
  return got
}

// The error a kafkajs call failed with, unwrapped from retry wrappers down to the protocol error.
async function errorOf(promise) {
  try {
    await promise
  } catch (e) {
    return e
  }
  throw new Error('expected the call to fail, it succeeded')
}

// The protocol error type (e.g. 'UNKNOWN_TOPIC_OR_PARTITION') under a kafkajs error: through retry
// wrappers (cause), aggregate errors (errors[0]) and per-partition errors (partitions[0].error).
function rootType(e) {
  let cur = e
  while (cur) {
    if (cur.type) return cur.type
    cur = cur.cause || cur.originalError || cur.errors?.[0] || cur.partitions?.[0]?.error
  }
  return undefined
}

// A test option for a case that fails on gregor because of an open gap in FINDINGS.md: the case is
// skipped (with the reason) against gregor and runs against Apache Kafka.
function gregorGap(reason) {
  return process.env.NODE_COMPAT_TARGET === 'gregor' ? `gregor gap, see FINDINGS.md: ${reason}` : false
}

module.exports = {
  gregorGap,
  bootstrap,
  kafka,
  admin,
  producer,
  consumer,
  cleanup,
  uniqueName,
  waitFor,
  createTopic,
  consumeN,
  errorOf,
  rootType,
}
