// testing/node/gregor.js, the Node helper for applications tested against gregor, used as an
// application's suite would: a gregor of its own (--clock manual), reset between tests, faults
// and the journal, seed data and await, the manual clock, a snapshot restored twice under a
// connected producer and a consumer group. gregor only (Kafka has no control plane).
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

test('helper: a snapshot brings back records and committed offsets, twice', opts, async () => {
  const topic = 'helper-snap'
  const groupId = 'helper-snap-group'
  const admin = kafka.admin()
  // Connected from before the snapshot to after each restore: it reconnects and goes on.
  const producer = kafka.producer()
  await admin.connect()
  await producer.connect()
  // What a snapshot brings back, as clients see it: the topics, the end offset, the committed offset.
  const state = async () => {
    const client = kafka.admin()
    await client.connect()
    try {
      const topics = (await client.listTopics()).filter(t => !t.startsWith('__')).sort()
      const [{ high }] = await client.fetchTopicOffsets(topic)
      const [{ partitions: [{ offset }] }] = await client.fetchOffsets({ groupId, topics: [topic] })
      return { topics, high, committed: offset }
    } finally {
      await client.disconnect()
    }
  }
  // A member of the group reads `count` records from where the group stands and commits past them.
  const groupRead = async count => {
    // A short long poll: disconnect() waits for the fetch in flight.
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 })
    await consumer.connect()
    try {
      await consumer.subscribe({ topic, fromBeginning: true })
      const read = []
      let next
      await new Promise(resolve => {
        consumer.run({
          autoCommit: false,
          eachMessage: async ({ message }) => {
            if (read.length === count) return
            read.push(`${message.offset}:${message.value}`)
            next = (BigInt(message.offset) + 1n).toString()
            if (read.length === count) resolve()
          }
        })
      })
      await consumer.commitOffsets([{ topic, partition: 0, offset: next }])
      return read
    } finally {
      await consumer.disconnect()
    }
  }
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true })
    const values = Array.from({ length: 10 }, (_, i) => ({ value: `v${i}` }))
    await producer.send({ topic, messages: values })
    await admin.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '6' }] })
    assert.equal((await g.snapshot('helper-before')).name, 'helper-before')
    assert.deepEqual((await g.snapshots()).map(s => s.name), ['helper-before'])
    const atSnapshot = await state()
    assert.deepEqual(atSnapshot, { topics: [topic], high: '10', committed: '6' })

    // After the snapshot: more records, the group reads and commits on, another topic.
    await producer.send({ topic, messages: [{ value: 'later' }, { value: 'later' }] })
    assert.equal((await groupRead(6)).length, 6)
    await admin.createTopics({ topics: [{ topic: 'helper-snap-extra' }] })
    assert.deepEqual(await state(), { topics: ['helper-snap', 'helper-snap-extra'], high: '12', committed: '12' })

    for (const round of [1, 2]) {
      assert.equal((await g.restore('helper-before')).name, 'helper-before')
      assert.deepEqual(await state(), atSnapshot, `restore ${round}`)
      // The group resumes at the snapshot's committed offset.
      assert.deepEqual(await groupRead(4), ['6:v6', '7:v7', '8:v8', '9:v9'], `restore ${round}`)
      // The producer's connection was closed by the restore: its next record follows the snapshot's last.
      const [{ baseOffset }] = await producer.send({ topic, messages: [{ value: `after-${round}` }] })
      assert.equal(baseOffset, '10', `restore ${round}`)
    }
  } finally {
    await producer.disconnect()
    await admin.disconnect()
  }
  assert.deepEqual(await g.deleteSnapshot('helper-before'), { deleted: 'helper-before' })
  await assert.rejects(g.restore('helper-before'), e => e instanceof GregorError && e.status === 404)
})
