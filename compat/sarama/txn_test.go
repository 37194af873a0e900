package compat

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// newTxnProducer: a transactional SyncProducer that sends each message to the partition it names.
func newTxnProducer(t *testing.T, txnID string) sarama.SyncProducer {
	t.Helper()
	cfg := newConfig(t)
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Transaction.ID = txnID
	cfg.Producer.Transaction.Timeout = 30 * time.Second
	cfg.Producer.Transaction.Retry.Max = 20
	cfg.Producer.Transaction.Retry.Backoff = 200 * time.Millisecond
	p, err := sarama.NewSyncProducer(bootstrap, cfg)
	if err != nil {
		t.Fatalf("NewSyncProducer(transactional %s): %v", txnID, err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func sendValues(t *testing.T, p sarama.SyncProducer, topic string, values ...string) {
	t.Helper()
	var msgs []*sarama.ProducerMessage
	for i, v := range values {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: int32(i % 2), Value: sarama.StringEncoder(v)})
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatalf("SendMessages %v: %v", values, err)
	}
}

// readUntil reads both partitions of topic with the given isolation level until each has shown
// its sentinel value, and returns every value read, partition 0's first.
func readUntil(t *testing.T, topic string, level sarama.IsolationLevel, sentinels [2]string) []string {
	t.Helper()
	cfg := newConfig(t)
	cfg.Consumer.IsolationLevel = level
	var values []string
	for p := int32(0); p < 2; p++ {
		got := consumePartition(t, cfg, topic, p, sarama.OffsetOldest, 30*time.Second, func(ms []*sarama.ConsumerMessage) bool {
			return len(ms) > 0 && string(ms[len(ms)-1].Value) == sentinels[p]
		})
		for _, m := range got {
			values = append(values, string(m.Value))
		}
	}
	return values
}

// TestTransactionsCommitAbort: a transactional SyncProducer commits one transaction, aborts one,
// and commits a third, over two partitions. A read_committed consumer sees exactly the committed
// records (the aborted ones and the control records skipped); a read_uncommitted one sees all.
func TestTransactionsCommitAbort(t *testing.T) {
	adm := newAdmin(t)
	topic := createTopic(t, adm, 2, nil)
	txnID := uniqueName(t, "txn")
	p := newTxnProducer(t, txnID)

	steps := []struct {
		commit bool
		values []string
	}{
		{true, []string{"c1-0", "c1-1", "c1-2", "c1-3"}},
		{false, []string{"a2-0", "a2-1", "a2-2", "a2-3"}},
		{true, []string{"c3-0", "c3-1", "c3-2", "c3-3"}},
	}
	for i, s := range steps {
		if err := p.BeginTxn(); err != nil {
			t.Fatalf("BeginTxn %d: %v", i, err)
		}
		sendValues(t, p, topic, s.values...)
		var err error
		if s.commit {
			err = p.CommitTxn()
		} else {
			err = p.AbortTxn()
		}
		if err != nil {
			t.Fatalf("end of transaction %d (commit %v): %v", i, s.commit, err)
		}
		if st := p.TxnStatus(); st&sarama.ProducerTxnFlagReady == 0 {
			t.Fatalf("after transaction %d the producer is %v, want ready", i, st)
		}
	}

	sentinels := [2]string{"c3-2", "c3-3"}
	committed := readUntil(t, topic, sarama.ReadCommitted, sentinels)
	want := []string{"c1-0", "c1-2", "c3-0", "c3-2", "c1-1", "c1-3", "c3-1", "c3-3"}
	if fmt.Sprint(committed) != fmt.Sprint(want) {
		t.Fatalf("read_committed read %v, want %v", committed, want)
	}
	all := readUntil(t, topic, sarama.ReadUncommitted, sentinels)
	want = []string{"c1-0", "c1-2", "a2-0", "a2-2", "c3-0", "c3-2", "c1-1", "c1-3", "a2-1", "a2-3", "c3-1", "c3-3"}
	if fmt.Sprint(all) != fmt.Sprint(want) {
		t.Fatalf("read_uncommitted read %v, want %v", all, want)
	}
}

// committedOffset is group's committed offset of partition 0 of topic (-1: none). The broker
// applies a committed transaction's offsets when its marker is written, after EndTxn answers, and
// until then OffsetFetch (without require_stable) answers the previous committed offset.
func committedOffset(t *testing.T, adm sarama.ClusterAdmin, group, topic string) (int64, string) {
	t.Helper()
	resp, err := adm.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0}})
	if err != nil {
		return -2, err.Error()
	}
	b := resp.GetBlock(topic, 0)
	if b == nil || b.Err != sarama.ErrNoError {
		return -2, fmt.Sprintf("%s/0: %+v", topic, b)
	}
	return b.Offset, fmt.Sprintf("committed %d", b.Offset)
}

func waitCommitted(t *testing.T, adm sarama.ClusterAdmin, group, topic string, want int64) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("committed offset %d", want), func() (bool, string) {
		off, note := committedOffset(t, adm, group, topic)
		return off == want, note
	})
}

// TestTransactionalConsumeTransformProduce: the exactly-once loop. A transactional producer reads
// an input topic and writes transformed records to an output topic, committing the group's input
// offsets in the same transaction, once with AddMessageToTxn and once with AddOffsetsToTxn (an
// aborted try first). The group's committed offset moves only with committed transactions, and a
// read_committed reader of the output sees each input record transformed exactly once.
func TestTransactionalConsumeTransformProduce(t *testing.T) {
	adm := newAdmin(t)
	in := createTopic(t, adm, 1, nil)
	out := createTopic(t, adm, 1, nil)
	group := uniqueName(t, "g")

	plain, err := sarama.NewSyncProducer(bootstrap, newConfig(t))
	if err != nil {
		t.Fatalf("NewSyncProducer: %v", err)
	}
	for i := 0; i < 6; i++ {
		if _, _, err := plain.SendMessage(&sarama.ProducerMessage{Topic: in, Value: sarama.StringEncoder(fmt.Sprintf("r%d", i))}); err != nil {
			t.Fatalf("SendMessage: %v", err)
		}
	}
	_ = plain.Close()
	input := consumePartition(t, newConfig(t), in, 0, sarama.OffsetOldest, 30*time.Second, atLeast(6))

	p := newTxnProducer(t, uniqueName(t, "txn"))
	transform := func(ms []*sarama.ConsumerMessage) {
		t.Helper()
		var vals []string
		for _, m := range ms {
			vals = append(vals, "T("+string(m.Value)+")")
		}
		// sendValues alternates partitions 0 and 1; out has one partition, so send one by one.
		for _, v := range vals {
			sendValues(t, p, out, v)
		}
	}

	// 1: the first three records, their offset committed through AddMessageToTxn (last + 1).
	if err := p.BeginTxn(); err != nil {
		t.Fatalf("BeginTxn: %v", err)
	}
	transform(input[:3])
	if err := p.AddMessageToTxn(input[2], group, nil); err != nil {
		t.Fatalf("AddMessageToTxn: %v", err)
	}
	if err := p.CommitTxn(); err != nil {
		t.Fatalf("CommitTxn: %v", err)
	}
	waitCommitted(t, adm, group, in, 3)

	// 2: the next three with AddOffsetsToTxn, aborted: neither output nor offset lands.
	offsets := map[string][]*sarama.PartitionOffsetMetadata{in: {{Partition: 0, Offset: 6, LeaderEpoch: -1}}}
	if err := p.BeginTxn(); err != nil {
		t.Fatalf("BeginTxn: %v", err)
	}
	transform(input[3:])
	if err := p.AddOffsetsToTxn(offsets, group); err != nil {
		t.Fatalf("AddOffsetsToTxn: %v", err)
	}
	if err := p.AbortTxn(); err != nil {
		t.Fatalf("AbortTxn: %v", err)
	}
	// Aborted: the offset stays where the first transaction put it.
	if off, note := committedOffset(t, adm, group, in); off != 3 {
		t.Fatalf("after the aborted transaction: %s, want 3", note)
	}

	// 3: the same again, committed.
	if err := p.BeginTxn(); err != nil {
		t.Fatalf("BeginTxn: %v", err)
	}
	transform(input[3:])
	if err := p.AddOffsetsToTxn(offsets, group); err != nil {
		t.Fatalf("AddOffsetsToTxn: %v", err)
	}
	if err := p.CommitTxn(); err != nil {
		t.Fatalf("CommitTxn: %v", err)
	}
	waitCommitted(t, adm, group, in, 6)

	cfg := newConfig(t)
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	got := consumePartition(t, cfg, out, 0, sarama.OffsetOldest, 30*time.Second, func(ms []*sarama.ConsumerMessage) bool {
		return len(ms) > 0 && string(ms[len(ms)-1].Value) == "T(r5)"
	})
	var vals []string
	for _, m := range got {
		vals = append(vals, string(m.Value))
	}
	if want := "[T(r0) T(r1) T(r2) T(r3) T(r4) T(r5)]"; fmt.Sprint(vals) != want {
		t.Fatalf("read_committed output %v, want %s", vals, want)
	}
}

// TestTransactionalZombieFenced: a second producer with the same transactional id fences the
// first: the first's open transaction cannot commit, and the second's transactions work.
func TestTransactionalZombieFenced(t *testing.T) {
	adm := newAdmin(t)
	topic := createTopic(t, adm, 2, nil)
	txnID := uniqueName(t, "txn")
	old := newTxnProducer(t, txnID)
	if err := old.BeginTxn(); err != nil {
		t.Fatalf("BeginTxn: %v", err)
	}
	sendValues(t, old, topic, "zombie-0", "zombie-1")

	fresh := newTxnProducer(t, txnID) // InitProducerId bumps the epoch and aborts old's transaction
	if err := fresh.BeginTxn(); err != nil {
		t.Fatalf("BeginTxn (new producer): %v", err)
	}
	sendValues(t, fresh, topic, "fresh-0", "fresh-1")
	if err := fresh.CommitTxn(); err != nil {
		t.Fatalf("CommitTxn (new producer): %v", err)
	}

	err := old.CommitTxn()
	if err == nil {
		t.Fatalf("the fenced producer committed")
	}
	if !errors.Is(err, sarama.ErrProducerFenced) && !errors.Is(err, sarama.ErrInvalidProducerEpoch) {
		t.Fatalf("the fenced producer's commit failed with %v, want %v or %v", err, sarama.ErrProducerFenced, sarama.ErrInvalidProducerEpoch)
	}
	t.Logf("fenced producer's commit: %v (status %v)", err, old.TxnStatus())

	committed := readUntil(t, topic, sarama.ReadCommitted, [2]string{"fresh-0", "fresh-1"})
	if fmt.Sprint(committed) != "[fresh-0 fresh-1]" {
		t.Fatalf("read_committed read %v, want only the new producer's records", committed)
	}
}
