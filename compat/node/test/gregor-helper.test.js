// testing/node/gregor.js, the Node helper for applications tested against gregor, used as an
// application's suite would: a gregor of its own (--clock manual), reset between tests, faults
// and the journal, seed data and await, the manual clock. gregor only (Kafka has no control plane).
'use strict'

const { test, before, after, beforeEach } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { Kafka, logLevel } = require('kafkajs')
const { startGregor, GregorError } = require('../../../testing/node/gregor')

const onKafka = process.env.NODE_COMPAT_TARGET === 'kafka'
let g
let kafka

before(async () => {
  if (onKafka) return
  const binary = process.env.GREGOR_BIN || path.resolve(__dirname, '../../../target/release/gregor')
  // With the manual clock the initial rebalance delay would wait for an advance: none.
  g = await startGregor({ binary, args: ['--clock', 'manual', '--override', 'group.initial.rebalance.delay.ms=0'] })
  kafka = new Kafka({ brokers: [g.bootstrap], clientId: 'helper-app', logLevel: logLevel.NOTHING })
})
after(() => g && g.stop())
beforeEach(async () => {
  if (onKafka) return
  await g.clearFaults()
  await g.reset()
})

const opts = { timeout: 60000, skip: onKafka && 'Kafka has no control plane' }

test('helper: a topic one test made is gone in the next', opts, async () => {
  const admin = kafka.admin()
  await admin.connect()
  try {
    await admin.createTopics({ topics: [{ topic: 'helper-left-behind' }] })
    assert.ok((await admin.listTopics()).includes('helper-left-behind'))
    await g.reset()
    assert.deepEqual((await admin.listTopics()).filter(t => !t.startsWith('__')), [])
  } finally {
    await admin.disconnect()
  }
})

test('helper: an injected error is retried and shows in the journal', opts, async () => {
  await g.seed({ topics: [{ name: 'helper-faulty', partitions: 1 }] })
  const rule = await g.fault({ api: 'Produce', topic: 'helper-faulty', times: 1, action: 'error', error: 'NOT_LEADER_OR_FOLLOWER' })
  const producer = kafka.producer()
  await producer.connect()
  try {
    await producer.send({ topic: 'helper-faulty', messages: [{ value: 'a' }] })
  } finally {
    await producer.disconnect()
  }
  assert.deepEqual((await g.faults()).map(f => [f.id, f.fired]), [[rule.id, 1]])
  const produced = await g.journal({ clientId: 'helper-app', api: 'Produce' })
  assert.deepEqual(produced.filter(e => e.fault).map(e => e.fault.rule), [rule.id])
  assert.ok(produced.some(e => !e.fault && e.error_codes.every(c => c === 0)), 'a retry that succeeded')
})

test('helper: seed, await, read; an await that times out; the manual clock', opts, async () => {
  await g.seed({ topics: [{ name: 'helper-seeded', partitions: 1, records: [{ value: 'one' }, { value: 'two' }] }] })
  await g.await({ topic: 'helper-seeded', partition: 0, high_watermark: 2 })
  const consumer = kafka.consumer({ groupId: 'helper-reader' })
  await consumer.connect()
  try {
    const values = []
    await consumer.subscribe({ topic: 'helper-seeded', fromBeginning: true })
    const done = new Promise(resolve => {
      consumer.run({ eachMessage: async ({ message }) => { values.push(message.value.toString()); if (values.length === 2) resolve() } })
    })
    await done
    assert.deepEqual(values, ['one', 'two'])
  } finally {
    await consumer.disconnect()
  }
  await assert.rejects(g.await({ topic: 'helper-seeded', partition: 0, high_watermark: 3 }, { timeoutMs: 50 }),
    e => e instanceof GregorError && e.status === 408)
  const before = await g.clock()
  assert.equal(await g.advanceClock(46000), before + 46000)
})
