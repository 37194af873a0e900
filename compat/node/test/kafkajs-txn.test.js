// kafkajs transactions (producer.transaction()): commit, abort, sendOffsets, read back with
// read_committed (readUncommitted: false) and read_uncommitted consumers, and a fenced zombie.
'use strict'

const { test, after } = require('node:test')
const assert = require('node:assert/strict')
const h = require('./helpers')

after(h.cleanup)

const txnProducer = transactionalId =>
  h.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1, transactionTimeout: 30000 })

test('commit and abort: read_committed sees only the committed records', { timeout: 90000 }, async t => {
  const adm = await h.admin()
  const topic = h.uniqueName(t, 'topic')
  await h.createTopic(adm, topic, 2)
  const prod = await txnProducer(h.uniqueName(t, 'txn'))

  const run = async (tag, perPartition, finish) => {
    const txn = await prod.transaction()
    const messages = []
    for (let p = 0; p < 2; p++) {
      for (let i = 0; i < perPartition; i++) messages.push({ partition: p, key: `${tag}-${p}-${i}`, value: `${tag}-${p}-${i}` })
    }
    await txn.send({ topic, messages })
    await txn[finish]()
  }
  await run('c1', 2, 'commit')
  await run('ab', 2, 'abort')
  await run('c2', 1, 'commit')

  // Per partition: c1 at 0-1, its commit marker at 2, ab at 3-4, its abort marker at 5, c2 at 6,
  // its marker at 7.
  assert.deepEqual(
    (await adm.fetchTopicOffsets(topic)).map(o => [o.partition, o.high]).sort(),
    [[0, '8'], [1, '8']]
  )
  const committed = await h.consumeN(topic, 6, { readUncommitted: false })
  for (let p = 0; p < 2; p++) {
    assert.deepEqual(
      committed.filter(m => m.partition === p).map(m => [m.offset, m.value.toString()]),
      [['0', `c1-${p}-0`], ['1', `c1-${p}-1`], ['6', `c2-${p}-0`]],
      `read_committed, partition ${p}`
    )
  }
  const all = await h.consumeN(topic, 10, { readUncommitted: true })
  for (let p = 0; p < 2; p++) {
    assert.deepEqual(
      all.filter(m => m.partition === p).map(m => m.offset),
      ['0', '1', '3', '4', '6'],
      `read_uncommitted sees the aborted records too (no markers), partition ${p}`
    )
  }
})

test('sendOffsets: committed with the transaction, dropped with an abort', { timeout: 90000 }, async t => {
  const adm = await h.admin()
  const input = h.uniqueName(t, 'in')
  const output = h.uniqueName(t, 'out')
  const groupId = h.uniqueName(t, 'group')
  await h.createTopic(adm, input, 1)
  await h.createTopic(adm, output, 1)
  const plain = await h.producer()
  await plain.send({ topic: input, messages: [1, 2, 3, 4].map(i => ({ value: `in-${i}` })) })

  const prod = await txnProducer(h.uniqueName(t, 'txn'))
  const committedOffset = async () => {
    const [res] = await adm.fetchOffsets({ groupId, topics: [input] })
    return res.partitions[0].offset
  }

  // Consume-transform-produce of the first two inputs, with their offsets, committed.
  let txn = await prod.transaction()
  await txn.send({ topic: output, messages: [{ value: 'out-1' }, { value: 'out-2' }] })
  await txn.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: input, partitions: [{ partition: 0, offset: '2' }] }] })
  await txn.commit()
  assert.equal(await committedOffset(), '2')

  // The next two, aborted: neither the output nor the offsets stay.
  txn = await prod.transaction()
  await txn.send({ topic: output, messages: [{ value: 'out-3' }, { value: 'out-4' }] })
  await txn.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: input, partitions: [{ partition: 0, offset: '4' }] }] })
  await txn.abort()
  assert.equal(await committedOffset(), '2', 'the aborted offsets are not committed')

  // Redo them, committed this time.
  txn = await prod.transaction()
  await txn.send({ topic: output, messages: [{ value: 'out-3b' }, { value: 'out-4b' }] })
  await txn.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: input, partitions: [{ partition: 0, offset: '4' }] }] })
  await txn.commit()
  assert.equal(await committedOffset(), '4')

  const out = await h.consumeN(output, 4, { readUncommitted: false })
  assert.deepEqual(out.map(m => m.value.toString()), ['out-1', 'out-2', 'out-3b', 'out-4b'])

  // A member of the group starts after the transactional commits: nothing left to read before a
  // new input record.
  await plain.send({ topic: input, messages: [{ value: 'in-5' }] })
  const rest = await h.consumeN(input, 1, { groupId })
  assert.deepEqual(rest.map(m => [m.offset, m.value.toString()]), [['4', 'in-5']])
})

test('a fenced zombie: the old producer of a transactional id fails', { timeout: 90000 }, async t => {
  const adm = await h.admin()
  const topic = h.uniqueName(t, 'topic')
  const transactionalId = h.uniqueName(t, 'txn')
  await h.createTopic(adm, topic, 1)

  const zombie = await txnProducer(transactionalId)
  const ztxn = await zombie.transaction()
  await ztxn.send({ topic, messages: [{ value: 'zombie-1' }] })

  // A new producer with the same id: InitProducerId bumps the epoch and aborts the open transaction.
  const fresh = await txnProducer(transactionalId)
  const ftxn = await fresh.transaction()
  await ftxn.send({ topic, messages: [{ value: 'fresh-1' }] })

  const sendErr = await h.errorOf(ztxn.send({ topic, messages: [{ value: 'zombie-2' }] }))
  // (Kafka 4.4 answers both with INVALID_PRODUCER_EPOCH: kafkajs uses pre-KIP-890 versions.)
  assert.equal(h.rootType(sendErr), 'INVALID_PRODUCER_EPOCH', `zombie send: ${sendErr}`)
  const commitErr = await h.errorOf(ztxn.commit())
  assert.equal(h.rootType(commitErr), 'INVALID_PRODUCER_EPOCH', `zombie commit: ${commitErr}`)

  await ftxn.commit()
  const got = await h.consumeN(topic, 1, { readUncommitted: false })
  assert.deepEqual(got.map(m => m.value.toString()), ['fresh-1'])
  const all = await h.consumeN(topic, 2, { readUncommitted: true })
  assert.deepEqual(
    all.map(m => m.value.toString()),
    ['zombie-1', 'fresh-1'],
    'the zombie\'s first record is in the log, aborted'
  )
})

test('an open transaction holds read_committed at its first record', { timeout: 90000 }, async t => {
  const adm = await h.admin()
  const topic = h.uniqueName(t, 'topic')
  await h.createTopic(adm, topic, 1)
  const prod = await txnProducer(h.uniqueName(t, 'txn'))
  const plain = await h.producer()

  const txn = await prod.transaction()
  await txn.send({ topic, messages: [{ value: 'open-1' }] })
  await plain.send({ topic, messages: [{ value: 'plain-1' }] })

  // A read_committed consumer running while the transaction is open.
  const rc = await h.consumer({ groupId: h.uniqueName(t, 'rc'), readUncommitted: false })
  const seen = []
  await rc.subscribe({ topics: [topic], fromBeginning: true })
  await rc.run({ eachMessage: async ({ message }) => void seen.push([message.offset, message.value.toString()]) })

  // Both records are in the log (read_uncommitted reads them)...
  const dirty = await h.consumeN(topic, 2, { readUncommitted: true })
  assert.deepEqual(dirty.map(m => m.value.toString()), ['open-1', 'plain-1'])
  // ...but the last stable offset is the open transaction's first record: kafkajs's ListOffsets
  // is read_committed, so the high watermark it reports is 0, and the consumer has nothing yet.
  const [{ high }] = await adm.fetchTopicOffsets(topic)
  assert.equal(high, '0', 'ListOffsets (read_committed) stops at the open transaction')
  assert.deepEqual(seen, [], 'read_committed delivered nothing past the open transaction')

  await txn.commit()
  await h.waitFor('read_committed to get both records', () => seen.length >= 2)
  assert.deepEqual(seen, [['0', 'open-1'], ['1', 'plain-1']])
  const [{ high: after }] = await adm.fetchTopicOffsets(topic)
  assert.equal(after, '3', 'after the commit marker')
})
