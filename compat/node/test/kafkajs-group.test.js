// kafkajs: consumer groups (the classic protocol; kafkajs has no KIP-848 support): two members
// splitting a topic, commits, a member leaving, resume from committed offsets, manual commits and
// the admin group calls.
'use strict'

const { test, after } = require('node:test')
const assert = require('node:assert/strict')
const h = require('./helpers')

after(h.cleanup)

// A group member that records its latest assignment and every message it gets.
async function member(groupId, topic, opts = {}) {
  const c = await h.consumer({ groupId, ...opts })
  const m = { c, assignment: null, joins: 0, got: [] }
  c.on(c.events.GROUP_JOIN, e => {
    m.assignment = (e.payload.memberAssignment[topic] || []).slice().sort()
    m.memberId = e.payload.memberId
    m.joins++
  })
  await c.subscribe({ topics: [topic], fromBeginning: true })
  await c.run({
    eachMessage: async ({ partition, message }) => {
      m.got.push({ partition, offset: Number(message.offset), value: message.value.toString() })
    },
  })
  return m
}

async function produceRound(prod, topic, partitions, perPartition, tag) {
  const messages = []
  for (let p = 0; p < partitions; p++) {
    for (let i = 0; i < perPartition; i++) messages.push({ partition: p, value: `${tag}-${p}-${i}` })
  }
  await prod.send({ topic, messages, acks: -1 })
  return messages.length
}

async function committed(adm, groupId, topic) {
  const [res] = await adm.fetchOffsets({ groupId, topics: [topic] })
  return res.partitions
    .slice()
    .sort((a, b) => a.partition - b.partition)
    .map(p => Number(p.offset))
}

test('two members split a topic, commit, and a new member resumes', { timeout: 90000 }, async t => {
  const adm = await h.admin()
  const topic = h.uniqueName(t, 'topic')
  const groupId = h.uniqueName(t, 'group')
  await h.createTopic(adm, topic, 4)
  const prod = await h.producer()

  const a = await member(groupId, topic)
  await h.waitFor('member A to get all 4 partitions', () => a.assignment && a.assignment.length === 4)
  const b = await member(groupId, topic)
  await h.waitFor(
    'A and B to hold 2 partitions each',
    () =>
      a.assignment?.length === 2 &&
      b.assignment?.length === 2 &&
      new Set([...a.assignment, ...b.assignment]).size === 4,
    45000
  )

  const [desc] = (await adm.describeGroups([groupId])).groups
  assert.equal(desc.state, 'Stable')
  assert.equal(desc.protocolType, 'consumer')
  assert.equal(desc.members.length, 2)
  assert.deepEqual(desc.members.map(x => x.memberId).sort(), [a.memberId, b.memberId].sort())
  const listed = (await adm.listGroups()).groups.find(g => g.groupId === groupId)
  assert.ok(listed, 'listGroups has the group')
  assert.equal(listed.protocolType, 'consumer')

  // Round 1: 10 per partition, split between the two by their assignments.
  await produceRound(prod, topic, 4, 10, 'r1')
  await h.waitFor('40 messages between A and B', () => a.got.length + b.got.length >= 40)
  for (const [name, m] of [['A', a], ['B', b]]) {
    assert.ok(m.got.length > 0, `${name} got messages`)
    for (const msg of m.got) assert.ok(m.assignment.includes(msg.partition), `${name} got p${msg.partition}`)
  }
  const seen = new Set([...a.got, ...b.got].map(x => `${x.partition}/${x.offset}`))
  assert.equal(seen.size, 40, 'each message once')
  await h.waitFor('commits at 10 on every partition', async () =>
    (await committed(adm, groupId, topic)).every(o => o === 10)
  )

  // A leaves: B takes over all four partitions and carries on from the commits.
  await a.c.disconnect()
  await h.waitFor('B to get all 4 partitions', () => b.assignment?.length === 4, 45000)
  const bBefore = b.got.length
  await produceRound(prod, topic, 4, 2, 'r2')
  await h.waitFor('B to get the 8 new messages', () => b.got.length >= bBefore + 8)
  assert.deepEqual(
    b.got.slice(bBefore).map(x => x.offset).sort(),
    [10, 10, 10, 10, 11, 11, 11, 11],
    'B resumed at the committed offsets'
  )
  await h.waitFor('commits at 12', async () => (await committed(adm, groupId, topic)).every(o => o === 12))
  await b.c.disconnect()

  // A new member of the group (fromBeginning: true) starts at the commits, not at offset 0.
  await produceRound(prod, topic, 4, 3, 'r3')
  const c = await member(groupId, topic)
  await h.waitFor('C to get the 12 new messages', () => c.got.length >= 12)
  const offsets = c.got.map(x => x.offset)
  assert.ok(offsets.every(o => o >= 12), `C started at the commits: ${offsets}`)
  assert.ok(
    c.got.slice(0, 12).every(x => x.value.startsWith('r3-')),
    'C got only the third round'
  )
  await h.waitFor('commits at 15', async () => (await committed(adm, groupId, topic)).every(o => o === 15))
})

test('manual commits, admin offsets (set, reset) and deleteGroups', { timeout: 90000 }, async t => {
  const adm = await h.admin()
  const topic = h.uniqueName(t, 'topic')
  const groupId = h.uniqueName(t, 'group')
  await h.createTopic(adm, topic, 2)
  const prod = await h.producer()
  await produceRound(prod, topic, 2, 5, 'm')

  // autoCommit off: nothing is committed until commitOffsets.
  const c = await h.consumer({ groupId })
  const got = []
  await c.subscribe({ topics: [topic], fromBeginning: true })
  await c.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      got.push({ partition, offset: message.offset })
    },
  })
  await h.waitFor('10 messages', () => got.length >= 10)
  assert.deepEqual(await committed(adm, groupId, topic), [-1, -1], 'no commits with autoCommit off')
  let mark = Date.now()
  const lap = what => {
    t.diagnostic(`${what}: ${Date.now() - mark} ms`)
    mark = Date.now()
  }
  await c.commitOffsets([
    { topic, partition: 0, offset: '3' },
    { topic, partition: 1, offset: '5' },
  ])
  assert.deepEqual(await committed(adm, groupId, topic), [3, 5])

  lap('consume and commit')
  // The group has a running member: kafkajs refuses setOffsets (it checks DescribeGroups state).
  const busy = await h.errorOf(adm.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '1' }] }))
  assert.match(String(busy), /current state: Stable/, String(busy))
  await c.disconnect()
  await h.waitFor('the group to be empty', async () => {
    const [g] = (await adm.describeGroups([groupId])).groups
    return g.state === 'Empty'
  })

  lap('refused setOffsets, leave')
  await adm.setOffsets({ groupId, topic, partitions: [{ partition: 0, offset: '1' }, { partition: 1, offset: '2' }] })
  assert.deepEqual(await committed(adm, groupId, topic), [1, 2])
  lap('setOffsets')
  // resetOffsets commits the special offset -1 (latest; -2 for earliest) as it is.
  await adm.resetOffsets({ groupId, topic, earliest: false })
  assert.deepEqual(await committed(adm, groupId, topic), [-1, -1], 'reset to the latest: -1')
  lap('resetOffsets')
  // A group that never committed has -1 (no offset) for every partition.
  const other = h.uniqueName(t, 'nogroup')
  assert.deepEqual(await committed(adm, other, topic), [-1, -1])

  const deleted = await adm.deleteGroups([groupId])
  assert.deepEqual(deleted.map(d => [d.groupId, d.errorCode]), [[groupId, 0]])
  const [gone] = (await adm.describeGroups([groupId])).groups
  assert.equal(gone.state, 'Dead', 'a deleted group describes as Dead')
  const err = await h.errorOf(adm.deleteGroups([groupId]))
  assert.equal(err.groups?.[0]?.error?.type ?? h.rootType(err), 'GROUP_ID_NOT_FOUND', String(err))
})
