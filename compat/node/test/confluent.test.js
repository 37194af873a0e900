// @confluentinc/kafka-javascript (librdkafka underneath) through its KafkaJS-compatible API:
// every codec with an idempotent producer, a two-member group with manual commits and a restarted
// member, the admin topic and group calls, and transactions read back with read_committed.
'use strict'

const { test, after } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const h = require('./helpers')
const { Kafka, logLevel, CompressionTypes, ConsumerGroupStates } = require('@confluentinc/kafka-javascript').KafkaJS

const clients = []
after(() => Promise.allSettled(clients.splice(0).map(c => c.disconnect())))

function kafka() {
  // librdkafka logs to the console by default; the expected errors of the cases are not news.
  return new Kafka({ kafkaJS: { brokers: [h.bootstrap], clientId: 'gregor-compat-ckjs', logLevel: logLevel.NOTHING } })
}
async function connected(c) {
  clients.push(c)
  await c.connect()
  return c
}
const admin = () => connected(kafka().admin())
const producer = kafkaJS => connected(kafka().producer({ kafkaJS: { acks: -1, ...kafkaJS } }))
// Short group timings, as the kafkajs cases use; librdkafka's fetch wait down from 500 ms.
const consumer = (kafkaJS, extra = {}) =>
  connected(
    kafka().consumer({
      kafkaJS: { fromBeginning: true, sessionTimeout: 10000, heartbeatInterval: 500, maxWaitTimeInMs: 100, ...kafkaJS },
      ...extra,
    })
  )

async function createTopic(adm, topic, numPartitions) {
  await adm.createTopics({ topics: [{ topic, numPartitions, replicationFactor: 1 }] })
  await h.waitFor(`leaders for ${topic}`, async () => {
    const [m] = await adm.fetchTopicMetadata({ topics: [topic] })
    const parts = m?.partitions || []
    return parts.length === numPartitions && parts.every(p => p.leader >= 0)
  })
}

// Reads topic from the start with a fresh group until n records arrived; returns them.
async function consumeN(topic, n, kafkaJS = {}, extra = {}) {
  const c = await consumer({ groupId: `ck-reader-${crypto.randomBytes(4).toString('hex')}`, ...kafkaJS }, extra)
  const got = []
  await c.subscribe({ topics: [topic] })
  await c.run({ eachMessage: async ({ partition, message }) => got.push({ partition, ...message }) })
  try {
    await h.waitFor(`${n} records from ${topic} (have ${got.length})`, () => got.length >= n)
  } finally {
    await c.disconnect()
  }
  return got
}

for (const codec of ['None', 'GZIP', 'SNAPPY', 'LZ4', 'ZSTD']) {
  test(`${codec}: an idempotent producer's records read back with keys and headers`, async t => {
    const adm = await admin()
    const topic = h.uniqueName(t, 'topic')
    await createTopic(adm, topic, 1)
    const prod = await producer({ idempotent: true, compression: CompressionTypes[codec] })
    const values = []
    for (let i = 0; i < 20; i++) values.push(`${codec}-${i}-${'gregor '.repeat(50)}`)
    // (send turns the messages' strings into Buffers, so the expected values are kept apart)
    const res = await prod.send({ topic, messages: values.map((value, i) => ({ key: `k${i}`, value, headers: { n: `${i}` } })) })
    assert.equal(res[0].errorCode, 0)
    const got = await consumeN(topic, 20)
    assert.equal(got.length, 20)
    got.forEach((m, i) => {
      assert.equal(Number(m.offset), i)
      assert.equal(m.key.toString(), `k${i}`)
      assert.equal(m.value.toString(), values[i])
      assert.equal(m.headers.n.toString(), `${i}`)
    })
  })
}

// A group member: its current assignment (from the consumer) and every value it got. Commits are
// manual: each record's next offset, committed after the record is handled.
async function member(groupId, topic, seen) {
  const c = await consumer({ groupId, autoCommit: false })
  await c.subscribe({ topics: [topic] })
  await c.run({
    eachMessage: async ({ partition, message }) => {
      seen.push(message.value.toString())
      await c.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }])
    },
  })
  return c
}
const held = c => c.assignment().length // one {topic, partition} per partition

test('two members split a topic with manual commits; a restarted member resumes from them', { timeout: 90000 }, async t => {
  const adm = await admin()
  const topic = h.uniqueName(t, 'topic')
  const groupId = h.uniqueName(t, 'group')
  await createTopic(adm, topic, 4)
  const prod = await producer({})
  const round = async (from, to) => {
    const messages = []
    for (let i = from; i < to; i++) messages.push({ partition: i % 4, value: `v${i}` })
    await prod.send({ topic, messages })
  }
  const seen = []
  await round(0, 40)
  const a = await member(groupId, topic, seen)
  let b = await member(groupId, topic, seen)
  await h.waitFor(
    'both members to share the 4 partitions and read 40 records',
    () => held(a) > 0 && held(b) > 0 && held(a) + held(b) === 4 && new Set(seen).size === 40,
    60000
  )
  await b.disconnect()
  await h.waitFor('A to hold all 4 partitions', () => held(a) === 4, 60000)
  await round(40, 60)
  await h.waitFor('A to read the next 20', () => new Set(seen).size === 60, 30000)
  b = await member(groupId, topic, seen)
  await round(60, 80)
  await h.waitFor(
    'the restarted member to share the partitions again and the group to read 80',
    () => held(a) > 0 && held(b) > 0 && held(a) + held(b) === 4 && new Set(seen).size === 80,
    60000
  )
  assert.equal(seen.length, 80, 'a record was read twice: the restarted member did not resume from the commits')
  await h.waitFor('the commits to reach the end offsets', async () => {
    const [res] = await adm.fetchOffsets({ groupId, topics: [topic] })
    return res.partitions.every(p => p.offset === '20')
  })
  const groups = await adm.describeGroups([groupId])
  assert.equal(groups.groups[0].state, ConsumerGroupStates.STABLE)
  assert.equal(groups.groups[0].members.length, 2)
})

test('admin: create, describe, list, delete topics and groups', async t => {
  const adm = await admin()
  const topic = h.uniqueName(t, 'topic')
  await createTopic(adm, topic, 3)
  assert.ok((await adm.listTopics()).includes(topic))
  const [md] = await adm.fetchTopicMetadata({ topics: [topic] })
  assert.equal(md.partitions.length, 3)
  // Creating it again: Kafka's TOPIC_ALREADY_EXISTS, which createTopics answers as false (as kafkajs).
  assert.equal(await adm.createTopics({ topics: [{ topic, numPartitions: 1 }] }), false)

  const prod = await producer({})
  await prod.send({ topic, messages: [{ partition: 0, value: 'x' }, { partition: 0, value: 'y' }] })
  const offsets = await adm.fetchTopicOffsets(topic)
  assert.deepEqual(
    offsets.sort((x, y) => x.partition - y.partition).map(p => [p.low, p.high]),
    [['0', '2'], ['0', '0'], ['0', '0']]
  )

  // A group that has committed and left: listed, described as Empty, deleted.
  const groupId = h.uniqueName(t, 'group')
  const seen = []
  const c = await member(groupId, topic, seen)
  await h.waitFor('the member to read 2 records', () => seen.length === 2)
  await c.disconnect()
  await h.waitFor('the group to be listed', async () => (await adm.listGroups()).groups.some(g => g.groupId === groupId))
  await h.waitFor('the group to be empty', async () => (await adm.describeGroups([groupId])).groups[0].state === ConsumerGroupStates.EMPTY)
  await adm.deleteGroups([groupId])

  await adm.deleteTopics({ topics: [topic] })
  await h.waitFor('the topic to be gone', async () => !(await adm.listTopics()).includes(topic))
})

test('transactions: commit and abort, read back with read_committed', async t => {
  const adm = await admin()
  const topic = h.uniqueName(t, 'topic')
  await createTopic(adm, topic, 1)
  const prod = await producer({ transactionalId: h.uniqueName(t, 'txn') })
  for (const [tag, commit] of [['c1', true], ['a2', false], ['c3', true]]) {
    const txn = await prod.transaction()
    await txn.send({ topic, messages: [0, 1, 2].map(i => ({ value: `${tag}-${i}` })) })
    await (commit ? txn.commit() : txn.abort())
  }
  const committed = await consumeN(topic, 6, { readUncommitted: false })
  assert.deepEqual(
    committed.map(m => m.value.toString()),
    ['c1-0', 'c1-1', 'c1-2', 'c3-0', 'c3-1', 'c3-2']
  )
  const all = await consumeN(topic, 9, { readUncommitted: true })
  assert.deepEqual(
    all.map(m => m.value.toString()),
    ['c1-0', 'c1-1', 'c1-2', 'a2-0', 'a2-1', 'a2-2', 'c3-0', 'c3-1', 'c3-2']
  )
})
