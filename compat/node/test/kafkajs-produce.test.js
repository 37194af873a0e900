// kafkajs: produce and consume with each codec kafkajs has built in, keys, headers and timestamps
// read back exactly; idempotent producer; LogAppendTime topics; a record over max.message.bytes.
'use strict'

const { test, after } = require('node:test')
const assert = require('node:assert/strict')
const { CompressionTypes } = require('kafkajs')
const h = require('./helpers')

after(h.cleanup)

// Messages with every field set in some and absent in others: keys (and null keys), values (and
// null values: tombstones), headers (one value, repeated keys, an empty value), explicit
// timestamps, explicit partitions.
function sampleMessages(partitions, count) {
  const base = Date.now() - 3600 * 1000
  const msgs = []
  for (let i = 0; i < count; i++) {
    const m = { partition: i % partitions, timestamp: String(base + i * 1000) }
    m.key = i % 5 === 4 ? null : Buffer.from(`key-${i}`)
    m.value = i % 7 === 6 ? null : Buffer.from(`value-${i}-${'x'.repeat(i * 13)}`)
    if (i % 3 === 0) m.headers = { h1: Buffer.from(`h-${i}`) }
    if (i % 3 === 1) m.headers = { rep: [Buffer.from('a'), Buffer.from('b')], empty: Buffer.alloc(0) }
    msgs.push(m)
  }
  return msgs
}

// Reads `topic` back and checks that each partition holds exactly `sent` (in order), with the
// same key, value, headers and timestamp.
async function assertReadBack(topic, sent, partitions) {
  const got = await h.consumeN(topic, sent.length)
  assert.equal(got.length, sent.length, 'message count')
  for (let p = 0; p < partitions; p++) {
    const want = sent.filter(m => m.partition === p)
    const have = got.filter(m => m.partition === p)
    assert.equal(have.length, want.length, `partition ${p} count`)
    have.forEach((m, i) => {
      const w = want[i]
      const where = `partition ${p} #${i}`
      assert.equal(m.offset, String(i), `${where} offset`)
      assert.deepEqual(m.key, w.key, `${where} key`)
      assert.deepEqual(m.value, w.value, `${where} value`)
      assert.equal(m.timestamp, w.timestamp, `${where} timestamp`)
      const wantHeaders = w.headers || {}
      assert.deepEqual(Object.keys(m.headers).sort(), Object.keys(wantHeaders).sort(), `${where} header keys`)
      for (const [k, v] of Object.entries(wantHeaders)) {
        assert.deepEqual(m.headers[k], v, `${where} header ${k}`)
      }
    })
  }
}

async function roundTrip(t, compression) {
  const adm = await h.admin()
  const topic = h.uniqueName(t, 'topic')
  await h.createTopic(adm, topic, 3)
  const prod = await h.producer()
  const sent = sampleMessages(3, 45)
  // Two requests: the first 30 in one send, the rest as a sendBatch.
  const res = await prod.send({ topic, messages: sent.slice(0, 30), compression, acks: -1 })
  assert.equal(res.length, 3, 'one result per partition')
  for (const r of res) {
    assert.equal(r.topicName, topic)
    assert.equal(r.errorCode, 0)
    assert.equal(r.baseOffset, '0')
  }
  const res2 = await prod.sendBatch({ topicMessages: [{ topic, messages: sent.slice(30) }], compression })
  for (const r of res2) assert.equal(r.baseOffset, '10', `second batch base offset p${r.partition}`)
  await assertReadBack(topic, sent, 3)
  const offsets = await adm.fetchTopicOffsets(topic)
  assert.deepEqual(
    offsets.map(o => [o.partition, o.low, o.high]).sort(),
    [[0, '0', '15'], [1, '0', '15'], [2, '0', '15']]
  )
}

test('produce/consume, no compression', { timeout: 60000 }, t => roundTrip(t, CompressionTypes.None))
test('produce/consume, gzip', { timeout: 60000 }, t => roundTrip(t, CompressionTypes.GZIP))
for (const codec of ['snappy', 'lz4', 'zstd']) {
  test(`produce/consume, ${codec}`, {
    skip: `kafkajs has no ${codec} codec built in (it needs a plugin package, e.g. ${codec === 'zstd' ? '@kafkajs/zstd' : `kafkajs-${codec}`}); not tested`,
  })
}

test('idempotent producer: several sends, no duplicates, in order', { timeout: 60000 }, async t => {
  const adm = await h.admin()
  const topic = h.uniqueName(t, 'topic')
  await h.createTopic(adm, topic, 2)
  const prod = await h.producer({ idempotent: true, maxInFlightRequests: 1 })
  const sent = []
  for (let round = 0; round < 5; round++) {
    const msgs = []
    for (let i = 0; i < 10; i++) {
      const n = round * 10 + i
      msgs.push({ partition: n % 2, key: `k${n}`, value: `v${n}`, timestamp: String(1700000000000 + n) })
    }
    const res = await prod.send({ topic, messages: msgs, acks: -1 })
    for (const r of res) assert.equal(r.baseOffset, String(round * 5), `round ${round} p${r.partition}`)
    sent.push(...msgs.map(m => ({ ...m, key: Buffer.from(m.key), value: Buffer.from(m.value) })))
  }
  await assertReadBack(topic, sent, 2)
})

test('LogAppendTime topic: the broker stamps the time', { timeout: 60000 }, async t => {
  const adm = await h.admin()
  const topic = h.uniqueName(t, 'topic')
  await h.createTopic(adm, topic, 1, [{ name: 'message.timestamp.type', value: 'LogAppendTime' }])
  const prod = await h.producer()
  const before = Date.now()
  const [res] = await prod.send({ topic, messages: [{ value: 'a', timestamp: '1000' }, { value: 'b' }] })
  const after = Date.now()
  assert.equal(res.errorCode, 0)
  const stamp = Number(res.logAppendTime)
  assert.ok(stamp >= before - 1000 && stamp <= after + 1000, `produce logAppendTime ${res.logAppendTime}`)
  const got = await h.consumeN(topic, 2)
  for (const m of got) assert.equal(m.timestamp, res.logAppendTime, 'consumed timestamp is the append time')
})

test('a record over max.message.bytes: MESSAGE_TOO_LARGE', { timeout: 60000 }, async t => {
  const adm = await h.admin()
  const topic = h.uniqueName(t, 'topic')
  await h.createTopic(adm, topic, 1, [{ name: 'max.message.bytes', value: '1024' }])
  const prod = await h.producer({ retry: { retries: 1, initialRetryTime: 100 } })
  const err = await h.errorOf(prod.send({ topic, messages: [{ value: Buffer.alloc(8192, 1) }] }))
  assert.equal(h.rootType(err), 'MESSAGE_TOO_LARGE', String(err))
  // The topic still takes small records.
  const [res] = await prod.send({ topic, messages: [{ value: 'small' }] })
  assert.equal(res.baseOffset, '0')
})
