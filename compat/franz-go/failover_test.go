package compat

// Failover as an application lives through it: a three-broker gregor (--brokers 3, started by
// run.sh with its admin listener and auto.leader.rebalance.enable=false, at
// GREGOR_FAILOVER_BOOTSTRAP / GREGOR_FAILOVER_ADMIN) has brokers stopped and started, leaders
// elected (ElectLeaders), partitions reassigned and the group coordinator stopped under an
// idempotent producer and a group consumer; every acknowledged record is read exactly once and
// the committed offsets are the log ends. A transactional producer follows its coordinator.
// Skipped without that broker (against the single-node reference Kafka).

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// failoverCluster is the three-broker gregor and its admin listener.
type failoverCluster struct {
	seeds []string
	admin string
}

func failoverFor(t *testing.T) failoverCluster {
	t.Helper()
	seeds, admin := os.Getenv("GREGOR_FAILOVER_BOOTSTRAP"), os.Getenv("GREGOR_FAILOVER_ADMIN")
	if seeds == "" || admin == "" {
		t.Skip("needs a three-broker gregor with its admin listener (run.sh starts one)")
	}
	return failoverCluster{strings.Split(seeds, ","), admin}
}

// broker stops or starts a broker through the admin listener.
func (f failoverCluster) broker(t *testing.T, id int32, action string) {
	t.Helper()
	url := fmt.Sprintf("http://%s/v1/brokers/%d/%s", f.admin, id, action)
	resp, err := http.Post(url, "application/json", nil)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %s", url, resp.Status)
	}
}

func (f failoverCluster) client(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{
		kgo.SeedBrokers(f.seeds...),
		kgo.RetryTimeout(60 * time.Second),
		kgo.MetadataMinAge(100 * time.Millisecond),
	}
	return newClient(t, append(base, opts...)...)
}

// setup: the cluster, an admin client, a context for the test, and a new topic of `partitions`
// partitions on all three brokers.
func failoverSetup(t *testing.T, partitions int32) (failoverCluster, *kadm.Client, context.Context, string) {
	t.Helper()
	f := failoverFor(t)
	adm := f.adm(t)
	ctx := ctxFor(t, 90*time.Second)
	topic := uniqueName(t, "t")
	if resp, err := adm.CreateTopic(ctx, partitions, 3, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("CreateTopic: %v / %v", err, resp.Err)
	}
	return f, adm, ctx, topic
}

func (f failoverCluster) adm(t *testing.T) *kadm.Client {
	adm := kadm.NewClient(f.client(t))
	adm.SetTimeoutMillis(15000)
	return adm
}

// ledger is what the producer had acknowledged and what the consumer read.
type ledger struct {
	mu       sync.Mutex
	acked    map[string]bool
	read     map[string]int
	failure  error
	position map[int32]int64
}

func (l *ledger) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failure == nil {
		l.failure = err
	}
}

// caughtUp: at least `want` acknowledged, and every acknowledged record read.
func (l *ledger) caughtUp(want int) (bool, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failure != nil {
		return true, ""
	}
	if len(l.acked) < want {
		return false, fmt.Sprintf("%d acknowledged", len(l.acked))
	}
	for v := range l.acked {
		if l.read[v] == 0 {
			return false, "not yet read: " + v
		}
	}
	return true, ""
}

func (l *ledger) progress(t *testing.T, step string) {
	t.Helper()
	l.mu.Lock()
	want := len(l.acked) + 200
	l.mu.Unlock()
	waitFor(t, 30*time.Second, "200 more records acknowledged and read after "+step, func() (bool, string) {
		return l.caughtUp(want)
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failure != nil {
		t.Fatalf("after %s: %v", step, l.failure)
	}
}

func TestFailoverProduceConsumeThroughElectionsReassignmentsAndStops(t *testing.T) {
	f, adm, ctx, topic := failoverSetup(t, 3)
	group := uniqueName(t, "g")
	l := &ledger{acked: map[string]bool{}, read: map[string]int{}, position: map[int32]int64{}}

	// The producer: idempotent, acks=all (franz-go's defaults, spelled out), partitions in turn.
	prod := f.client(t, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	stop := make(chan struct{})
	var producing sync.WaitGroup
	producing.Add(1)
	go func() {
		defer producing.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				if err := prod.Flush(context.Background()); err != nil {
					l.fail(err)
				}
				return
			default:
			}
			v := fmt.Sprintf("r-%d", i)
			r := &kgo.Record{Topic: topic, Partition: int32(i % 3), Value: []byte(v)}
			prod.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
				if err != nil {
					l.fail(fmt.Errorf("%s: %w", v, err))
					return
				}
				l.mu.Lock()
				l.acked[v] = true
				l.mu.Unlock()
			})
			if i%50 == 49 {
				time.Sleep(10 * time.Millisecond) // pacing of the load, not a wait on a condition
			}
		}
	}()

	// The consumer: a group member committing synchronously after each poll.
	cons := f.client(t, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	consCtx, stopConsuming := context.WithCancel(context.Background())
	var consuming sync.WaitGroup
	consuming.Add(1)
	go func() {
		defer consuming.Done()
		for consCtx.Err() == nil {
			fetches := cons.PollFetches(consCtx)
			if consCtx.Err() != nil {
				return
			}
			fetches.EachError(func(t string, p int32, err error) { l.fail(fmt.Errorf("fetch %s-%d: %w", t, p, err)) })
			records := fetches.Records()
			if len(records) == 0 {
				continue
			}
			l.mu.Lock()
			for _, r := range records {
				l.read[string(r.Value)]++
				l.position[r.Partition] = r.Offset + 1
			}
			l.mu.Unlock()
			if err := cons.CommitRecords(consCtx, records...); err != nil && consCtx.Err() == nil {
				l.fail(fmt.Errorf("commit: %w", err))
			}
		}
	}()
	finished := false
	defer func() {
		if !finished {
			close(stop)
			stopConsuming()
		}
	}()

	leaderOf := func(p int32) int32 {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			t.Fatalf("Metadata: %v", err)
		}
		return md.Topics[topic].Partitions[p].Leader
	}
	partitions := func() map[int32]kadm.PartitionDetail {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			t.Fatalf("Metadata: %v", err)
		}
		return md.Topics[topic].Partitions
	}
	l.progress(t, "start")

	// 1. The leader of partition 0 stops and starts.
	first := leaderOf(0)
	f.broker(t, first, "stop")
	l.progress(t, fmt.Sprintf("broker %d stopped", first))
	// Metadata is cached by the client for MetadataMinAge: wait, never assume.
	waitFor(t, 10*time.Second, "partition 0 to move off the stopped broker", func() (bool, string) {
		return leaderOf(0) != first, ""
	})
	f.broker(t, first, "start")
	l.progress(t, fmt.Sprintf("broker %d started", first))

	// 2. A preferred election brings the leaders back to the first replicas.
	elected, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, kadm.TopicsSet{topic: {0: {}, 1: {}, 2: {}}})
	if err != nil {
		t.Fatalf("ElectLeaders: %v", err)
	}
	for p, r := range elected[topic] {
		if r.Err != nil && !strings.Contains(r.Err.Error(), "ELECTION_NOT_NEEDED") {
			t.Fatalf("ElectLeaders %d: %v %s", p, r.Err, r.ErrMessage)
		}
	}
	waitFor(t, 10*time.Second, "the preferred replicas to lead", func() (bool, string) {
		for _, d := range partitions() {
			if d.Leader != d.Replicas[0] {
				return false, fmt.Sprintf("%+v", d)
			}
		}
		return true, ""
	})
	l.progress(t, "the preferred election")

	// 3. Reassignments: partition 0 loses its leader's replica, partition 1 is reversed.
	before := partitions()
	moved0 := slices.Clone(before[0].Replicas[1:])
	moved1 := slices.Clone(before[1].Replicas)
	slices.Reverse(moved1)
	var req kadm.AlterPartitionAssignmentsReq
	req.Assign(topic, 0, moved0)
	req.Assign(topic, 1, moved1)
	altered, err := adm.AlterPartitionAssignments(ctx, req)
	if err == nil {
		err = altered.Error()
	}
	if err != nil {
		t.Fatalf("AlterPartitionAssignments: %v", err)
	}
	waitFor(t, 30*time.Second, "the reassignments to complete", func() (bool, string) {
		listed, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{topic: {0: {}, 1: {}}})
		if err != nil {
			return false, err.Error()
		}
		return len(listed.Sorted()) == 0, fmt.Sprintf("%+v", listed)
	})
	waitFor(t, 10*time.Second, "the new replicas and leaders", func() (bool, string) {
		after := partitions()
		ok := slices.Equal(after[0].Replicas, moved0) && slices.Equal(after[1].Replicas, moved1) &&
			after[0].Leader != before[0].Leader && after[0].LeaderEpoch > before[0].LeaderEpoch
		return ok, fmt.Sprintf("%+v then %+v", before, after)
	})
	l.progress(t, "the reassignments")

	// 4. The group's coordinator stops; the consumer follows it to another broker.
	groups, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("DescribeGroups: %v", err)
	}
	old := groups[group].Coordinator.NodeID
	f.broker(t, old, "stop")
	l.progress(t, fmt.Sprintf("coordinator %d stopped", old))
	// A new admin client: kadm keeps a coordinator it found until it answers NOT_COORDINATOR,
	// which a stopped broker never does.
	fresh := f.adm(t)
	waitFor(t, 10*time.Second, "another coordinator", func() (bool, string) {
		groups, err := fresh.DescribeGroups(ctx, group)
		if err != nil {
			return false, err.Error()
		}
		return groups[group].Coordinator.NodeID != old, ""
	})
	f.broker(t, old, "start")
	l.progress(t, fmt.Sprintf("coordinator %d started", old))

	finished = true
	close(stop)
	producing.Wait()
	waitFor(t, 30*time.Second, "every acknowledged record read", func() (bool, string) { return l.caughtUp(0) })
	stopConsuming()
	consuming.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failure != nil {
		t.Fatal(l.failure)
	}
	for v, n := range l.read {
		if n != 1 || !l.acked[v] {
			t.Fatalf("%s read %d times (acknowledged: %v)", v, n, l.acked[v])
		}
	}
	if len(l.read) != len(l.acked) {
		t.Fatalf("%d acknowledged, %d read", len(l.acked), len(l.read))
	}
	// The committed offsets are where the consumer stopped: the log ends.
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("FetchOffsets: %v", err)
	}
	ends := endOffsets(t, adm, topic)
	for p, pos := range l.position {
		c, ok := committed.Lookup(topic, p)
		if !ok || c.At != pos || pos != ends[p] {
			t.Fatalf("partition %d: committed %+v, position %d, end %d", p, c, pos, ends[p])
		}
	}
	if len(l.position) != 3 {
		t.Fatalf("positions %v", l.position)
	}
	t.Logf("%d records acknowledged and read once", len(l.acked))
}

// Three transactions through a stop of the transaction coordinator's broker; read_committed
// reads them exactly.
func TestFailoverTransactionalProducerFollowsItsCoordinator(t *testing.T) {
	f, _, ctx, topic := failoverSetup(t, 1)
	txnID := uniqueName(t, "x")
	p := f.client(t, kgo.TransactionalID(txnID), kgo.DefaultProduceTopic(topic))
	transaction := func(n int) {
		if err := p.BeginTransaction(); err != nil {
			t.Fatalf("BeginTransaction %d: %v", n, err)
		}
		for i := 0; i < 10; i++ {
			r := &kgo.Record{Value: []byte(fmt.Sprintf("t%d-%d", n, i))}
			if err := p.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce in transaction %d: %v", n, err)
			}
		}
		if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatalf("commit %d: %v", n, err)
		}
	}
	// Each time a new admin client: kadm keeps a coordinator it found until it answers
	// NOT_COORDINATOR, which a stopped broker never does.
	coordinator := func() (int32, error) {
		described, err := f.adm(t).DescribeTransactions(ctx, txnID)
		return described[txnID].Coordinator, err
	}
	transaction(0)
	old, err := coordinator()
	if err != nil {
		t.Fatalf("DescribeTransactions: %v", err)
	}
	f.broker(t, old, "stop")
	transaction(1)
	waitFor(t, 10*time.Second, "another transaction coordinator", func() (bool, string) {
		now, err := coordinator()
		return err == nil && now != old, fmt.Sprintf("%d %v", now, err)
	})
	f.broker(t, old, "start")
	transaction(2)

	c := f.client(t, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []string
	for _, r := range consumeN(t, c, 30, 30*time.Second) {
		got = append(got, string(r.Value))
	}
	var want []string
	for n := 0; n < 3; n++ {
		for i := 0; i < 10; i++ {
			want = append(want, fmt.Sprintf("t%d-%d", n, i))
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("read_committed read %v", got)
	}
}
