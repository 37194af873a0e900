// The web console in a real browser: headless Debian Chromium driven by playwright-core, against
// the gregor run.sh started (CONSOLE_URL is its admin listener, GREGOR_BOOTSTRAP its Kafka
// listener). The data is made by a real client (kafkajs); what the console shows is checked
// against what was produced, and what the console produces is read back by the client. Each
// view's screenshot goes to CONSOLE_SCREENSHOTS. Waits are on page loads and conditions.
'use strict'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { chromium } = require('playwright-core')
const { Kafka, logLevel } = require('kafkajs')

const url = process.env.CONSOLE_URL
const shots = process.env.CONSOLE_SCREENSHOTS
const bootstrap = process.env.GREGOR_BOOTSTRAP
if (!url || !shots || !bootstrap) {
  console.error('run the suite through compat/console/run.sh')
  process.exit(2)
}

const TOPIC = 'console-orders'
const GROUP = 'console-group'
const BASE_TS = 1_700_000_000_000 // 2023-11-14T22:13:20.000Z
const kafka = new Kafka({ clientId: 'console-seed', brokers: [bootstrap], logLevel: logLevel.NOTHING })

let browser
let page
let consumer
const consumed = []

async function shot(name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true })
}

// The text of every cell of table `id`, row by row.
async function table(id, p = page) {
  return p.$$eval(`table#${id} tbody tr`, (rows) =>
    rows.map((r) => Array.from(r.querySelectorAll('td')).map((td) => td.innerText.trim()))
  )
}

async function until(what, check, ms = 30000) {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await check()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

before(async () => {
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 3 }], waitForLeaders: true })
  await admin.disconnect()
  const producer = kafka.producer()
  await producer.connect()
  // Ten records: partition i % 3, JSON values, one header, timestamps a second apart; the last
  // one's value is markup, which the console must show as text.
  const messages = []
  for (let i = 0; i < 10; i++) {
    messages.push({
      partition: i % 3,
      key: `order-${i}`,
      value: i === 9 ? '<script>window.pwned = 1</script>' : JSON.stringify({ order: i, item: 'book' }),
      headers: { source: 'seed' },
      timestamp: String(BASE_TS + i * 1000),
    })
  }
  await producer.send({ topic: TOPIC, messages })
  await producer.disconnect()

  // A group that has read and committed everything, and stays up (a stable classic group).
  consumer = kafka.consumer({ groupId: GROUP, sessionTimeout: 10000, heartbeatInterval: 500 })
  await consumer.connect()
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true })
  await consumer.run({ eachMessage: async ({ message }) => consumed.push(message) })
  await until('the group to consume the seed', async () => consumed.length >= 10)
  const offsets = kafka.admin()
  await offsets.connect()
  await until('the group to commit the seed', async () => {
    const [t] = await offsets.fetchOffsets({ groupId: GROUP, topics: [TOPIC] })
    return t.partitions.reduce((n, p) => n + Math.max(0, Number(p.offset)), 0) === 10
  })
  await offsets.disconnect()

  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  })
  page = await browser.newPage()
})

after(async () => {
  if (consumer) await consumer.disconnect()
  if (browser) await browser.close()
})

test('the cluster view lists the broker and its listener', async () => {
  await page.goto(`${url}/ui`)
  const summary = Object.fromEntries(await page.$$eval('table#summary tr', (rows) =>
    rows.map((r) => [r.querySelector('th').innerText, r.querySelector('td').innerText])))
  assert.ok(Number(summary.Topics) >= 1 && Number(summary.Partitions) >= 3)
  const brokers = await table('brokers')
  assert.equal(brokers.length, 1)
  assert.equal(brokers[0][1], bootstrap)
  assert.equal(brokers[0][3], 'running')
  assert.ok((await table('listeners')).some((l) => l[3] === '127.0.0.1'))
  await shot('1-cluster')
})

test('topics lead to a topic with its partitions, offsets and configs', async () => {
  await page.goto(`${url}/ui`)
  await page.click('nav >> text=Topics')
  const row = (await table('topics')).find((r) => r[0] === TOPIC)
  assert.deepEqual(row.slice(0, 4), [TOPIC, '3', '1', '10'])
  await shot('2-topics')
  await page.click(`table#topics >> text=${TOPIC}`)
  assert.equal(await page.textContent('h1'), `Topic ${TOPIC}`)
  const partitions = await table('partitions')
  assert.deepEqual(partitions.map((p) => p[0]), ['0', '1', '2'])
  // Partitions 0, 1, 2 got 4, 3, 3 records: start 0, high watermark = end offset = the count.
  assert.deepEqual(partitions.map((p) => [p[4], p[5], p[6]]), [['0', '4', '4'], ['0', '3', '3'], ['0', '3', '3']])
  const configs = Object.fromEntries((await table('configs')).map((c) => [c[0], c[1]]))
  assert.equal(configs['cleanup.policy'], 'delete')
  await shot('3-topic')
})

test('a partition browses from an offset or a timestamp, as text, JSON or hex', async () => {
  await page.goto(`${url}/ui/topics/${TOPIC}`)
  await page.click('table#partitions >> text=0')
  let records = await table('records')
  // Partition 0 holds records 0, 3, 6, 9 of the seed.
  assert.deepEqual(records.map((r) => r[2]), ['order-0', 'order-3', 'order-6', 'order-9'])
  assert.equal(records[0][1], '2023-11-14T22:13:20.000Z (CreateTime)')
  assert.equal(records[1][3], '{"order":3,"item":"book"}')
  assert.equal(records[1][4], 'source=seed')
  // Markup in a value is text, never run.
  assert.equal(records[3][3], '<script>window.pwned = 1</script>')
  assert.equal(await page.evaluate(() => window.pwned), undefined)
  await shot('4-records-text')

  await page.fill('form#browse input[name=offset]', '1')
  await page.selectOption('form#browse select[name=format]', 'json')
  await Promise.all([page.waitForNavigation(), page.click('form#browse button')])
  records = await table('records')
  assert.equal(records[0][0], '1')
  assert.equal(records[0][3], '{\n  "order": 3,\n  "item": "book"\n}')
  await shot('5-records-json')

  await page.selectOption('form#browse select[name=format]', 'hex')
  await page.fill('form#browse input[name=offset]', '')
  // Record 6 was stamped BASE_TS + 6 s: the first at or after BASE_TS + 5 s in partition 0.
  await page.fill('form#browse input[name=timestamp]', '2023-11-14T22:13:25Z')
  await Promise.all([page.waitForNavigation(), page.click('form#browse button')])
  records = await table('records')
  assert.equal(records[0][0], '2')
  assert.equal(records[0][2], Buffer.from('order-6').toString('hex'))
  await shot('6-records-hex')

  // A page of one record links to the next.
  await page.goto(`${url}/ui/topics/${TOPIC}/partitions/0?limit=1`)
  assert.deepEqual((await table('records')).map((r) => r[0]), ['0'])
  await page.click('text=Next records')
  assert.deepEqual((await table('records')).map((r) => r[0]), ['1'])
})

test('a record produced from the console is read back by a Kafka client', async () => {
  await page.goto(`${url}/ui/topics/${TOPIC}`)
  await page.fill('form#produce input[name=partition]', '1')
  await page.fill('form#produce input[name=key]', 'from-console')
  await page.fill('form#produce textarea[name=value]', 'hello from the browser')
  await page.fill('form#produce textarea[name=headers]', 'origin=console\ntrace=42')
  await Promise.all([page.waitForNavigation(), page.click('form#produce button')])
  const notice = await page.textContent('#produced')
  assert.equal(notice, 'Produced to partition 1 at offset 3.')
  await shot('7-produced')

  await page.goto(`${url}/ui/topics/${TOPIC}/partitions/1?offset=3`)
  const [r] = await table('records')
  assert.deepEqual([r[0], r[2], r[3], r[4]], ['3', 'from-console', 'hello from the browser', 'origin=console\ntrace=42'])

  // The group's consumer receives it like any record.
  const got = await until('the consumer to receive the console record', async () =>
    consumed.find((m) => m.key && m.key.toString() === 'from-console'))
  assert.equal(got.value.toString(), 'hello from the browser')
  assert.equal(got.headers.origin.toString(), 'console')
  assert.equal(got.headers.trace.toString(), '42')
})

test('groups show members, assignments, committed offsets and lag', async () => {
  // Lag: two records the group has not read, produced while the consumer is paused.
  consumer.pause([{ topic: TOPIC, partitions: [2] }])
  const producer = kafka.producer()
  await producer.connect()
  await producer.send({ topic: TOPIC, messages: [{ partition: 2, value: 'a' }, { partition: 2, value: 'b' }] })
  await producer.disconnect()

  await page.goto(`${url}/ui/groups`)
  const row = await until('the group with its lag', async () => {
    await page.reload()
    return (await table('groups')).find((g) => g[0] === GROUP && g[4] === '2')
  })
  assert.deepEqual(row.slice(1, 4), ['classic', 'Stable', 'consumer'])
  await shot('8-groups')

  await page.click(`table#groups >> text=${GROUP}`)
  const members = await table('members')
  assert.equal(members.length, 1)
  assert.equal(members[0][2], 'console-seed')
  assert.deepEqual(members[0][4].split(', ').sort(), [`${TOPIC}-0`, `${TOPIC}-1`, `${TOPIC}-2`])
  const offsets = await table('offsets')
  assert.deepEqual(offsets.find((o) => o[1] === '2').slice(2), ['3', '5', '2'])
  await shot('9-group')
  consumer.resume([{ topic: TOPIC, partitions: [2] }])
})

test('the journal and the fault rules of the test control plane', async () => {
  const armed = await fetch(`${url}/v1/faults`, {
    method: 'POST',
    body: JSON.stringify({ api: 'CreateTopics', topic: 'never-created', action: 'error', error: 'POLICY_VIOLATION' }),
  })
  assert.equal(armed.status, 200)
  try {
    await page.goto(`${url}/ui/faults`)
    const rules = await table('faults')
    assert.equal(rules.length, 1)
    assert.ok(rules[0].includes('POLICY_VIOLATION') && rules[0].includes('never-created'))
    await shot('10-faults')
  } finally {
    await fetch(`${url}/v1/faults`, { method: 'DELETE' })
  }

  await page.goto(`${url}/ui/journal`)
  await page.fill('form#filter input[name=api]', 'Produce')
  await Promise.all([page.waitForNavigation(), page.click('form#filter button')])
  const head = await page.$$eval('table#journal th', (th) => th.map((h) => h.innerText))
  const api = head.indexOf('api')
  const entries = await table('journal')
  assert.ok(api >= 0 && entries.length >= 2, `journal: ${JSON.stringify(head)} ${entries.length}`)
  assert.ok(entries.every((e) => e[api] === 'Produce'))
  await shot('11-journal')
})

test('the read-only views and the produce form work with JavaScript disabled', async () => {
  const context = await browser.newContext({ javaScriptEnabled: false })
  const p = await context.newPage()
  try {
    await p.goto(`${url}/ui/topics`)
    assert.ok((await table('topics', p)).some((r) => r[0] === TOPIC))
    await p.goto(`${url}/ui/topics/${TOPIC}/partitions/2?format=text`)
    assert.ok((await table('records', p)).length >= 3)
    await p.goto(`${url}/ui/groups/${GROUP}`)
    assert.equal((await table('offsets', p)).length, 3)
    await p.goto(`${url}/ui/topics/${TOPIC}`)
    await p.fill('form#produce input[name=key]', 'no-js')
    await p.fill('form#produce textarea[name=value]', 'posted by a plain form')
    await Promise.all([p.waitForNavigation(), p.click('form#produce button')])
    assert.match(await p.textContent('#produced'), /^Produced to partition \d at offset \d+\.$/)
  } finally {
    await context.close()
  }
})

test('bad input gets an error page, and another site cannot post to the console', async () => {
  for (const [target, status] of [
    ['/ui/topics/no-such-topic', 404],
    [`/ui/topics/${TOPIC}/partitions/7`, 404],
    [`/ui/topics/${TOPIC}/partitions/0?offset=x`, 400],
    [`/ui/topics/${TOPIC}/partitions/0?format=xml`, 400],
    ['/ui/nothing-here', 404],
  ]) {
    const resp = await page.goto(`${url}${target}`)
    assert.equal(resp.status(), status, target)
    assert.ok((await page.textContent('#error')).length > 0)
  }
  const forged = await fetch(`${url}/ui/topics/${TOPIC}/produce`, {
    method: 'POST',
    headers: { Origin: 'http://evil.example', 'Content-Type': 'application/x-www-form-urlencoded' },
    body: 'key=forged&value=x',
  })
  assert.equal(forged.status, 403)
  const resp = await page.goto(`${url}/ui/topics/${TOPIC}/partitions/0?limit=500`)
  assert.equal(resp.status(), 200)
  assert.ok(!(await table('records')).some((r) => r[2] === 'forged'))
})
