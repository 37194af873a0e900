package compat

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

const groupPartitions = 4

// member is one consumer of a group, polling in its own goroutine and keeping what it got and
// what it is assigned (from the rebalance callbacks).
type member struct {
	cl      *kgo.Client
	mu      sync.Mutex
	owned   map[int32]bool
	records []*kgo.Record
	errs    []error
	cancel  context.CancelFunc
	done    chan struct{}
}

func groupOpts(group, topic string, kip848 bool) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}
	if kip848 {
		// KIP-848: the broker assigns (the default cooperative-sticky balancer maps to "uniform").
		opts = append(opts, kgo.ServerSideBalancer())
	}
	return opts
}

func startMember(t *testing.T, group, topic string, kip848 bool) *member {
	m := &member{owned: map[int32]bool{}, done: make(chan struct{})}
	set := func(parts map[string][]int32, to bool) {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, p := range parts[topic] {
			if to {
				m.owned[p] = true
			} else {
				delete(m.owned, p)
			}
		}
	}
	opts := append(groupOpts(group, topic, kip848),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { set(a, true) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { set(r, false) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) { set(l, false) }),
	)
	m.cl = newClient(t, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			fs := m.cl.PollFetches(ctx)
			m.mu.Lock()
			for _, fe := range fs.Errors() {
				if !errors.Is(fe.Err, context.Canceled) {
					m.errs = append(m.errs, fmt.Errorf("%s[%d]: %w", fe.Topic, fe.Partition, fe.Err))
				}
			}
			m.records = append(m.records, fs.Records()...)
			m.mu.Unlock()
		}
	}()
	t.Cleanup(m.stop)
	return m
}

func (m *member) stop() {
	m.cancel()
	<-m.done
}

func (m *member) snapshot() (owned []int32, n int, errs []error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for p := range m.owned {
		owned = append(owned, p)
	}
	sort.Slice(owned, func(i, j int) bool { return owned[i] < owned[j] })
	return owned, len(m.records), append([]error(nil), m.errs...)
}

// produceRound writes perPartition records to each partition, values "round/partition/i".
func produceRound(t *testing.T, topic string, round, perPartition int) {
	t.Helper()
	p := newClient(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var rs []*kgo.Record
	for part := 0; part < groupPartitions; part++ {
		for i := 0; i < perPartition; i++ {
			rs = append(rs, &kgo.Record{Partition: int32(part), Value: []byte(fmt.Sprintf("%d/%d/%d", round, part, i))})
		}
	}
	if err := p.ProduceSync(ctxFor(t, 30*time.Second), rs...).FirstErr(); err != nil {
		t.Fatalf("produce round %d: %v", round, err)
	}
	p.Close()
}

// groupState is the group's state and member count, through the describe API of its protocol.
func groupState(ctx context.Context, adm *kadm.Client, group string, kip848 bool) (string, int, error) {
	if kip848 {
		ds, err := adm.DescribeConsumerGroups(ctx, group)
		if err != nil {
			return "", 0, err
		}
		d := ds[group]
		return d.State, len(d.Members), d.Err
	}
	ds, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return "", 0, err
	}
	d := ds[group]
	return d.State, len(d.Members), d.Err
}

// testGroup: two members split a 4-partition topic (2 partitions each, disjoint), consume every
// record exactly once between them and commit; the group is described and listed as Kafka does;
// after both close, a new member resumes exactly at the committed offsets; then the group is
// deleted.
func testGroup(t *testing.T, kip848 bool) {
	adm := newAdmin(t)
	topic := createTopic(t, adm, groupPartitions, nil)
	group := uniqueName(t, "g")
	ctx := ctxFor(t, 120*time.Second)

	m1 := startMember(t, group, topic, kip848)
	waitFor(t, 30*time.Second, "the first member to own every partition", func() (bool, string) {
		owned, _, errs := m1.snapshot()
		return len(owned) == groupPartitions && len(errs) == 0, fmt.Sprintf("owned %v errs %v", owned, errs)
	})
	m2 := startMember(t, group, topic, kip848)
	waitFor(t, 60*time.Second, "the two members to split the partitions 2/2", func() (bool, string) {
		o1, _, e1 := m1.snapshot()
		o2, _, e2 := m2.snapshot()
		all := map[int32]bool{}
		for _, p := range append(append([]int32(nil), o1...), o2...) {
			all[p] = true
		}
		ok := len(o1) == 2 && len(o2) == 2 && len(all) == groupPartitions && len(e1)+len(e2) == 0
		return ok, fmt.Sprintf("member 1 owns %v (errs %v), member 2 owns %v (errs %v)", o1, e1, o2, e2)
	})

	// The broker's view of the group, while both members are in it.
	waitFor(t, 30*time.Second, "the group to be described as stable with two members", func() (bool, string) {
		state, n, err := groupState(ctx, adm, group, kip848)
		return err == nil && state == "Stable" && n == 2, fmt.Sprintf("state %q, %d members, err %v", state, n, err)
	})
	if kip848 {
		ds, err := adm.DescribeConsumerGroups(ctx, group)
		if err != nil {
			t.Fatalf("DescribeConsumerGroups: %v", err)
		}
		d := ds[group]
		if d.AssignorName != "uniform" {
			t.Errorf("assignor %q, want uniform", d.AssignorName)
		}
		if got := len(d.AssignedPartitions().Sorted()); got != 1 || len(d.AssignedPartitions()[topic]) != groupPartitions {
			t.Errorf("described assignment %v, want all %d partitions of %s", d.AssignedPartitions(), groupPartitions, topic)
		}
		for _, m := range d.Members {
			if m.MemberEpoch <= 0 || len(m.SubscribedTopics) != 1 || m.SubscribedTopics[0] != topic {
				t.Errorf("member %+v: want a positive epoch and subscription [%s]", m, topic)
			}
		}
	} else {
		ds, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			t.Fatalf("DescribeGroups: %v", err)
		}
		d := ds[group]
		if d.ProtocolType != "consumer" || d.Protocol != "cooperative-sticky" {
			t.Errorf("protocol type %q protocol %q, want consumer / cooperative-sticky", d.ProtocolType, d.Protocol)
		}
		if len(d.AssignedPartitions()[topic]) != groupPartitions {
			t.Errorf("described assignment %v, want all %d partitions of %s", d.AssignedPartitions(), groupPartitions, topic)
		}
	}
	wantType := "classic"
	if kip848 {
		wantType = "consumer"
	}
	lg, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatalf("ListGroups: %v", err)
	}
	if g, ok := lg[group]; !ok || g.GroupType != wantType || g.State != "Stable" || g.ProtocolType != "consumer" {
		t.Errorf("ListGroups has %+v (present %v), want type %s, state Stable, protocol type consumer", g, ok, wantType)
	}
	// A group with members cannot be deleted.
	if _, err := adm.DeleteGroup(ctx, group); !errors.Is(err, kerr.NonEmptyGroup) {
		t.Errorf("DeleteGroup of a live group: %v, want NON_EMPTY_GROUP", err)
	}

	// Round 1: 100 records per partition, split between the members by their assignment.
	produceRound(t, topic, 1, 100)
	waitFor(t, 60*time.Second, "the members to consume 400 records", func() (bool, string) {
		_, n1, e1 := m1.snapshot()
		_, n2, e2 := m2.snapshot()
		return n1+n2 >= 400 || len(e1)+len(e2) > 0, fmt.Sprintf("%d + %d records", n1, n2)
	})
	m1.stop()
	m2.stop()
	seen := map[string]bool{}
	for i, m := range []*member{m1, m2} {
		owned, n, errs := m.snapshot()
		if len(errs) > 0 {
			t.Fatalf("member %d: fetch errors %v", i+1, errs)
		}
		if n != 200 {
			t.Errorf("member %d consumed %d records, want 200 (its 2 partitions)", i+1, n)
		}
		mine := map[int32]bool{}
		for _, p := range owned {
			mine[p] = true
		}
		for _, r := range m.records {
			if !mine[r.Partition] {
				t.Errorf("member %d got %s[%d]@%d but owns %v", i+1, r.Topic, r.Partition, r.Offset, owned)
			}
			if seen[string(r.Value)] {
				t.Errorf("record %q consumed twice", r.Value)
			}
			seen[string(r.Value)] = true
		}
		if err := m.cl.CommitUncommittedOffsets(ctx); err != nil {
			t.Fatalf("member %d commit: %v", i+1, err)
		}
	}
	if len(seen) != 400 {
		t.Fatalf("%d distinct records consumed, want 400", len(seen))
	}
	fo, err := adm.FetchOffsets(ctx, group)
	if err != nil || fo.Error() != nil {
		t.Fatalf("FetchOffsets: %v / %v", err, fo.Error())
	}
	for p := int32(0); p < groupPartitions; p++ {
		if o, ok := fo.Lookup(topic, p); !ok || o.At != 100 {
			t.Errorf("committed offset of partition %d: %+v (present %v), want 100", p, o, ok)
		}
	}
	if !kip848 { // kadm's Lag describes the group with DescribeGroups, which is for classic groups
		lag, err := adm.Lag(ctx, group)
		if err != nil {
			t.Fatalf("Lag: %v", err)
		}
		if l := lag[group]; l.Error() != nil || l.Lag.Total() != 0 {
			t.Errorf("lag after the commit: total %d, err %v; want 0", l.Lag.Total(), l.Error())
		}
	} else if ds, err := adm.DescribeGroups(ctx, group); err != nil || !errors.Is(ds[group].Err, kerr.GroupIDNotFound) {
		// Kafka: "Group ... is not a classic group."
		t.Errorf("DescribeGroups of a consumer-protocol group: %v / %v, want GROUP_ID_NOT_FOUND", err, ds[group].Err)
	}

	// Both leave; the group empties, keeping its offsets.
	m1.cl.Close()
	m2.cl.Close()
	waitFor(t, 30*time.Second, "the group to be empty after both members closed", func() (bool, string) {
		state, n, err := groupState(ctx, adm, group, kip848)
		return err == nil && state == "Empty" && n == 0, fmt.Sprintf("state %q, %d members, err %v", state, n, err)
	})

	// Round 2: a new member resumes at offset 100 of every partition and reads only round 2.
	produceRound(t, topic, 2, 50)
	m3 := newClient(t, groupOpts(group, topic, kip848)...)
	got := consumeN(t, m3, 200, 60*time.Second)
	first := map[int32]int64{}
	seen = map[string]bool{}
	for _, r := range got {
		if _, ok := first[r.Partition]; !ok {
			first[r.Partition] = r.Offset
		}
		if r.Offset < 100 || seen[string(r.Value)] {
			t.Errorf("resumed member got %s[%d]@%d %q: before the committed offset or twice", r.Topic, r.Partition, r.Offset, r.Value)
		}
		seen[string(r.Value)] = true
	}
	for p := int32(0); p < groupPartitions; p++ {
		if first[p] != 100 {
			t.Errorf("partition %d resumed at %d, want 100 (the committed offset)", p, first[p])
		}
	}
	if len(got) != 200 || len(seen) != 200 {
		t.Errorf("resumed member got %d records (%d distinct), want 200", len(got), len(seen))
	}
	if err := m3.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("resumed member commit: %v", err)
	}
	m3.Close()
	fo, err = adm.FetchOffsets(ctx, group)
	if err != nil || fo.Error() != nil {
		t.Fatalf("FetchOffsets: %v / %v", err, fo.Error())
	}
	for p := int32(0); p < groupPartitions; p++ {
		if o, ok := fo.Lookup(topic, p); !ok || o.At != 150 {
			t.Errorf("committed offset of partition %d after round 2: %+v, want 150", p, o)
		}
	}

	// Once empty, the group can be deleted, with its offsets.
	waitFor(t, 30*time.Second, "the group to be empty again", func() (bool, string) {
		state, n, err := groupState(ctx, adm, group, kip848)
		return err == nil && state == "Empty" && n == 0, fmt.Sprintf("state %q, %d members, err %v", state, n, err)
	})
	if dr, err := adm.DeleteGroup(ctx, group); err != nil || dr.Err != nil {
		t.Fatalf("DeleteGroup: %v / %v", err, dr.Err)
	}
	fo, err = adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("FetchOffsets after delete: %v", err)
	}
	if o, ok := fo.Lookup(topic, 0); ok && o.Err == nil && o.At >= 0 {
		t.Errorf("offsets survived DeleteGroup: %+v", o)
	}
	if _, err := adm.DeleteGroup(ctx, group); !errors.Is(err, kerr.GroupIDNotFound) {
		t.Errorf("deleting a deleted group: %v, want GROUP_ID_NOT_FOUND", err)
	}
}

func TestGroupClassic(t *testing.T)  { testGroup(t, false) }
func TestGroupConsumer(t *testing.T) { testGroup(t, true) }
