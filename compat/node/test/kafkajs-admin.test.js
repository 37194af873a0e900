// kafkajs admin: the cluster, topics (create, describe, configs, partitions, delete) and their
// errors, list offsets (fetchTopicOffsets, by timestamp), delete records, ACLs without an authorizer.
'use strict'

const { test, after } = require('node:test')
const assert = require('node:assert/strict')
const { ConfigResourceTypes, AclResourceTypes, AclOperationTypes, AclPermissionTypes, ResourcePatternTypes } =
  require('kafkajs')
const h = require('./helpers')

after(h.cleanup)

// An admin client that gives up quickly on the retriable errors the error cases expect.
const quickAdmin = () => h.admin({ retry: { retries: 1, initialRetryTime: 100 } })

test('describeCluster: one broker, the bootstrap address, the controller', { timeout: 30000 }, async () => {
  const adm = await h.admin()
  const cluster = await adm.describeCluster()
  assert.equal(cluster.brokers.length, 1)
  const [broker] = cluster.brokers
  assert.equal(`${broker.host}:${broker.port}`, h.bootstrap)
  assert.equal(cluster.controller, broker.nodeId)
  assert.ok(cluster.clusterId, 'a cluster id')
})

test('topics: create, describe, configs, partitions, delete', { timeout: 60000 }, async t => {
  const adm = await h.admin()
  const topic = h.uniqueName(t, 'topic')

  // validateOnly creates nothing.
  assert.equal(
    await adm.createTopics({ topics: [{ topic, numPartitions: 2 }], validateOnly: true, waitForLeaders: false }),
    true
  )
  assert.ok(!(await adm.listTopics()).includes(topic), 'validateOnly created nothing')

  await h.createTopic(adm, topic, 2, [
    { name: 'retention.ms', value: '3600000' },
    { name: 'cleanup.policy', value: 'compact' },
  ])
  // A second create of the same topic: kafkajs turns TOPIC_ALREADY_EXISTS into false.
  assert.equal(await adm.createTopics({ topics: [{ topic, numPartitions: 2 }] }), false)
  assert.ok((await adm.listTopics()).includes(topic))

  const { brokers } = await adm.describeCluster()
  const meta = await adm.fetchTopicMetadata({ topics: [topic] })
  assert.equal(meta.topics.length, 1)
  assert.equal(meta.topics[0].name, topic)
  const parts = meta.topics[0].partitions.slice().sort((a, b) => a.partitionId - b.partitionId)
  assert.deepEqual(parts.map(p => p.partitionId), [0, 1])
  for (const p of parts) {
    assert.equal(p.partitionErrorCode, 0)
    assert.equal(p.leader, brokers[0].nodeId)
    assert.deepEqual(p.replicas, [brokers[0].nodeId])
    assert.deepEqual(p.isr, [brokers[0].nodeId])
  }

  // describeConfigs: the values set at create time, and a default one.
  const described = async names => {
    const res = await adm.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: names }],
      includeSynonyms: false,
    })
    assert.equal(res.resources.length, 1)
    assert.equal(res.resources[0].errorCode, 0)
    return Object.fromEntries(res.resources[0].configEntries.map(e => [e.configName, e]))
  }
  let cfg = await described(['retention.ms', 'cleanup.policy', 'max.message.bytes'])
  assert.equal(cfg['retention.ms'].configValue, '3600000')
  assert.equal(cfg['retention.ms'].isDefault, false)
  assert.equal(cfg['cleanup.policy'].configValue, 'compact')
  assert.equal(cfg['max.message.bytes'].isDefault, true)
  assert.equal(cfg['max.message.bytes'].configValue, '1048588')

  // alterConfigs (the legacy, non-incremental call: it replaces the topic's whole config set).
  await adm.alterConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: '7200000' }] }],
  })
  // (Kafka's broker applies the change from the metadata log a moment after answering.)
  cfg = await h.waitFor('the altered config', async () => {
    const c = await described(['retention.ms', 'cleanup.policy'])
    return c['retention.ms'].configValue === '7200000' && c
  })
  assert.equal(cfg['cleanup.policy'].configValue, 'delete', 'alterConfigs dropped the unlisted override')
  assert.equal(cfg['cleanup.policy'].isDefault, true)

  // createPartitions: 2 -> 4.
  await adm.createPartitions({ topicPartitions: [{ topic, count: 4 }] })
  await h.waitFor('4 partitions in metadata, each answering ListOffsets', async () => {
    const m = await adm.fetchTopicMetadata({ topics: [topic] })
    return m.topics[0].partitions.length === 4 && (await adm.fetchTopicOffsets(topic)).length === 4
  })

  await adm.deleteTopics({ topics: [topic], timeout: 15000 })
  await h.waitFor('the topic to be gone', async () => !(await adm.listTopics()).includes(topic))
})

test('topic admin errors', { timeout: 60000 }, async t => {
  const adm = await quickAdmin()
  const topic = h.uniqueName(t, 'topic')
  await h.createTopic(adm, topic, 2)

  const createErr = async (spec, what) => {
    const err = await h.errorOf(adm.createTopics({ topics: [{ topic: h.uniqueName(t, 'bad'), ...spec }] }))
    return [h.rootType(err), String(err?.errors?.[0] ?? err), what]
  }
  let [type, msg] = await createErr({ numPartitions: 1, replicationFactor: 3 })
  assert.equal(type, 'INVALID_REPLICATION_FACTOR', msg)
  ;[type, msg] = await createErr({ numPartitions: 0 })
  assert.equal(type, 'INVALID_PARTITIONS', msg)
  ;[type, msg] = await createErr({ configEntries: [{ name: 'cleanup.policy', value: 'bogus' }] })
  assert.equal(type, 'INVALID_CONFIG', msg)
  ;[type, msg] = await createErr({ configEntries: [{ name: 'no.such.config', value: '1' }] })
  assert.equal(type, 'INVALID_CONFIG', msg)
  const badName = await h.errorOf(adm.createTopics({ topics: [{ topic: 'bad name!' }] }))
  assert.equal(h.rootType(badName), 'INVALID_TOPIC_EXCEPTION', String(badName))

  // createPartitions: fewer or as many partitions as there are, or an unknown topic.
  for (const count of [1, 2]) {
    const err = await h.errorOf(adm.createPartitions({ topicPartitions: [{ topic, count }] }))
    assert.equal(h.rootType(err), 'INVALID_PARTITIONS', `count ${count}: ${err}`)
  }
  const cpUnknown = await h.errorOf(
    adm.createPartitions({ topicPartitions: [{ topic: h.uniqueName(t, 'missing'), count: 3 }] })
  )
  assert.equal(h.rootType(cpUnknown), 'UNKNOWN_TOPIC_OR_PARTITION', String(cpUnknown))

  // describeConfigs of an unknown topic: the error is in the resource.
  const dc = await h.errorOf(
    adm.describeConfigs({ resources: [{ type: ConfigResourceTypes.TOPIC, name: h.uniqueName(t, 'missing') }] })
  )
  assert.equal(h.rootType(dc), 'UNKNOWN_TOPIC_OR_PARTITION', String(dc))

  // deleteTopics of an unknown topic (kafkajs retries it, then gives up with the cause).
  const del = await h.errorOf(adm.deleteTopics({ topics: [h.uniqueName(t, 'missing')], timeout: 5000 }))
  assert.equal(h.rootType(del), 'UNKNOWN_TOPIC_OR_PARTITION', String(del))
})

test('list offsets: fetchTopicOffsets and fetchTopicOffsetsByTimestamp', { timeout: 60000 }, async t => {
  const adm = await h.admin()
  const topic = h.uniqueName(t, 'topic')
  await h.createTopic(adm, topic, 2)
  assert.deepEqual(
    (await adm.fetchTopicOffsets(topic)).map(o => [o.partition, o.low, o.high, o.offset]).sort(),
    [[0, '0', '0', '0'], [1, '0', '0', '0']]
  )
  const prod = await h.producer()
  const base = Date.now() - 60000
  const messages = []
  for (let i = 0; i < 10; i++) messages.push({ partition: 0, value: `v${i}`, timestamp: String(base + i * 1000) })
  messages.push({ partition: 1, value: 'only', timestamp: String(base) })
  await prod.send({ topic, messages })
  assert.deepEqual(
    (await adm.fetchTopicOffsets(topic)).map(o => [o.partition, o.low, o.high, o.offset]).sort(),
    [[0, '0', '10', '10'], [1, '0', '1', '1']]
  )
  const byTs = async ts =>
    (await adm.fetchTopicOffsetsByTimestamp(topic, ts))
      .slice()
      .sort((a, b) => a.partition - b.partition)
      .map(o => o.offset)
  assert.deepEqual(await byTs(base - 1000), ['0', '0'], 'before everything: the first offsets')
  assert.deepEqual(await byTs(base + 4500), ['5', '1'], 'the first record at or after the time (none: the end)')
  assert.deepEqual(await byTs(base + 9000), ['9', '1'])
  assert.deepEqual(await byTs(Date.now() + 60000), ['10', '1'], 'after everything: the log end')
})

test('deleteTopicRecords', { timeout: 60000 }, async t => {
  const adm = await quickAdmin()
  const topic = h.uniqueName(t, 'topic')
  await h.createTopic(adm, topic, 2)
  const prod = await h.producer()
  const messages = []
  for (let i = 0; i < 10; i++) messages.push({ partition: i % 2, value: `v${i}` })
  await prod.send({ topic, messages })

  await adm.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '3' }] })
  await adm.deleteTopicRecords({ topic, partitions: [{ partition: 1, offset: '-1' }] }) // -1: everything
  assert.deepEqual(
    (await adm.fetchTopicOffsets(topic)).map(o => [o.partition, o.low, o.high]).sort(),
    [[0, '3', '5'], [1, '5', '5']]
  )
  const got = await h.consumeN(topic, 2)
  assert.deepEqual(
    got.map(m => [m.partition, m.offset, m.value.toString()]),
    [[0, '3', 'v6'], [0, '4', 'v8']],
    'a consumer from the beginning starts at the new log start'
  )

  const err = await h.errorOf(adm.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '99' }] }))
  assert.equal(h.rootType(err), 'OFFSET_OUT_OF_RANGE', String(err))
})

test(
  'ACLs without an authorizer: SECURITY_DISABLED',
  { timeout: 30000 }, async () => {
  const adm = await quickAdmin()
  const err = await h.errorOf(
    adm.describeAcls({
      resourceType: AclResourceTypes.ANY,
      resourcePatternType: ResourcePatternTypes.ANY,
      operation: AclOperationTypes.ANY,
      permissionType: AclPermissionTypes.ANY,
    })
  )
  assert.equal(h.rootType(err), 'SECURITY_DISABLED', String(err))
})
