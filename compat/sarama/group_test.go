package compat

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// groupLog collects what the members of one group consumed and which partitions each holds.
type groupLog struct {
	mu       sync.Mutex
	seen     map[string]int     // value -> times consumed
	claims   map[string][]int32 // member name -> partitions of its current session
	sessions map[string]int     // member name -> sessions set up
	errs     []error
}

func newGroupLog() *groupLog {
	return &groupLog{seen: map[string]int{}, claims: map[string][]int32{}, sessions: map[string]int{}}
}

func (g *groupLog) snapshot() (distinct, total int, claims map[string][]int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	claims = map[string][]int32{}
	for k, v := range g.claims {
		claims[k] = append([]int32(nil), v...)
	}
	for _, c := range g.seen {
		distinct++
		total += c
	}
	return distinct, total, claims
}

// member is one ConsumerGroup handler: it marks every record it consumes and commits the marks
// synchronously when it has caught up and when its session ends (auto-commit is off, so the
// commits are the test's own).
type member struct {
	name string
	log  *groupLog
}

func (m *member) Setup(s sarama.ConsumerGroupSession) error {
	m.log.mu.Lock()
	defer m.log.mu.Unlock()
	var parts []int32
	for _, ps := range s.Claims() {
		parts = append(parts, ps...)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	m.log.claims[m.name] = parts
	m.log.sessions[m.name]++
	return nil
}

func (m *member) Cleanup(s sarama.ConsumerGroupSession) error {
	s.Commit()
	m.log.mu.Lock()
	defer m.log.mu.Unlock()
	delete(m.log.claims, m.name)
	return nil
}

func (m *member) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for {
		select {
		case msg, ok := <-c.Messages():
			if !ok {
				return nil
			}
			m.log.mu.Lock()
			m.log.seen[string(msg.Value)]++
			m.log.mu.Unlock()
			s.MarkMessage(msg, "")
			// Commit once the fetched records are handled, not per record: Sarama sends the
			// commit on the connection its consumer long-polls with (one broker here), so each
			// commit waits out a fetch's MaxWaitTime.
			if len(c.Messages()) == 0 {
				s.Commit()
			}
		case <-s.Context().Done():
			return nil
		}
	}
}

// runMember joins group as name and consumes topic until stopped; stop waits for it to leave.
func runMember(t *testing.T, group, topic, name string, log *groupLog) (stop func()) {
	t.Helper()
	cfg := newConfig(t)
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	cfg.Consumer.Group.Session.Timeout = 10 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	// Sarama waits Retry.Backoff (2 s by default) before joining again after a failed join
	// (e.g. REBALANCE_IN_PROGRESS while the other member joins, or NOT_COORDINATOR while a new
	// offsets topic loads); retry as long in total, in shorter steps, to keep the case short.
	cfg.Consumer.Group.Rebalance.Retry.Backoff = 100 * time.Millisecond
	cfg.Consumer.Group.Rebalance.Retry.Max = 100
	cg, err := sarama.NewConsumerGroup(bootstrap, group, cfg)
	if err != nil {
		t.Fatalf("NewConsumerGroup(%s): %v", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			// Consume returns at every rebalance; join again until stopped.
			if err := cg.Consume(ctx, []string{topic}, &member{name: name, log: log}); err != nil && ctx.Err() == nil {
				log.mu.Lock()
				log.errs = append(log.errs, fmt.Errorf("%s: %w", name, err))
				log.mu.Unlock()
				return
			}
		}
	}()
	go func() {
		for err := range cg.Errors() {
			log.mu.Lock()
			log.errs = append(log.errs, fmt.Errorf("%s: %w", name, err))
			log.mu.Unlock()
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			if err := cg.Close(); err != nil {
				t.Errorf("close %s: %v", name, err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func produceValues(t *testing.T, topic string, from, to int) {
	t.Helper()
	p, err := sarama.NewSyncProducer(bootstrap, newConfig(t))
	if err != nil {
		t.Fatalf("NewSyncProducer: %v", err)
	}
	defer func() { _ = p.Close() }()
	var msgs []*sarama.ProducerMessage
	for i := from; i < to; i++ {
		// No key: Sarama's default partitioner picks a random partition.
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprintf("v%d", i))})
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatalf("SendMessages: %v", err)
	}
}

// TestConsumerGroupTwoMembers: two members of one classic group split four partitions, consume
// and commit everything once; when one member leaves the other takes all partitions; records
// produced while it is gone are consumed once by the group, and after the member is restarted the
// two share the partitions again, resuming from the committed offsets (nothing is read twice).
// The committed offsets the admin reads back are the log end offsets.
func TestConsumerGroupTwoMembers(t *testing.T) {
	adm := newAdmin(t)
	topic := createTopic(t, adm, 4, nil)
	group := uniqueName(t, "g")
	glog := newGroupLog()

	produceValues(t, topic, 0, 40)
	runMember(t, group, topic, "a", glog)
	stopB := runMember(t, group, topic, "b", glog)
	waitShared := func(what string, want int) {
		waitFor(t, 60*time.Second, what, func() (bool, string) {
			distinct, total, claims := glog.snapshot()
			glog.mu.Lock()
			errs := append([]error(nil), glog.errs...)
			glog.mu.Unlock()
			if len(errs) > 0 {
				t.Fatalf("group errors: %v", errs)
			}
			ok := distinct == want && len(claims["a"])+len(claims["b"]) == 4 && len(claims["a"]) > 0 && len(claims["b"]) > 0
			return ok, fmt.Sprintf("consumed %d distinct (%d total) of %d, claims %v", distinct, total, want, claims)
		})
	}
	began := time.Now()
	phase := func(what string) { t.Logf("%6.2fs %s", time.Since(began).Seconds(), what) }
	waitShared("both members to share the partitions and consume 40 records", 40)

	phase("both members consumed the first 40")
	stopB()
	waitFor(t, 60*time.Second, "member a to hold all four partitions", func() (bool, string) {
		_, _, claims := glog.snapshot()
		return len(claims["a"]) == 4, fmt.Sprintf("claims %v", claims)
	})
	phase("a holds all partitions")
	produceValues(t, topic, 40, 60)
	waitFor(t, 60*time.Second, "member a to consume the 20 new records", func() (bool, string) {
		distinct, total, _ := glog.snapshot()
		return distinct == 60, fmt.Sprintf("consumed %d distinct (%d total)", distinct, total)
	})

	phase("a consumed the next 20")
	runMember(t, group, topic, "b", glog)
	produceValues(t, topic, 60, 80)
	waitShared("the restarted member to rejoin and the group to consume 80 records", 80)

	phase("the restarted b shares the partitions, 80 consumed")
	_, total, _ := glog.snapshot()
	if total != 80 {
		glog.mu.Lock()
		var twice []string
		for v, c := range glog.seen {
			if c > 1 {
				twice = append(twice, v)
			}
		}
		glog.mu.Unlock()
		sort.Strings(twice)
		t.Fatalf("%d deliveries for 80 records: consumed more than once: %v", total, twice)
	}

	// Committed offsets = end offsets, partition by partition.
	ends, err := adm.ListOffsets(map[string]map[int32]int64{topic: {0: sarama.OffsetNewest, 1: sarama.OffsetNewest,
		2: sarama.OffsetNewest, 3: sarama.OffsetNewest}}, nil)
	if err != nil {
		t.Fatalf("ListOffsets: %v", err)
	}
	waitFor(t, 30*time.Second, "committed offsets to reach the end offsets", func() (bool, string) {
		resp, err := adm.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2, 3}})
		if err != nil {
			return false, err.Error()
		}
		for p := int32(0); p < 4; p++ {
			b := resp.GetBlock(topic, p)
			if b == nil || b.Err != sarama.ErrNoError || b.Offset != ends[topic][p].Offset {
				return false, fmt.Sprintf("partition %d committed %+v, end %d", p, b, ends[topic][p].Offset)
			}
		}
		return true, ""
	})

	// The group as the admin describes it: classic, stable, two members with assignments.
	groups, err := adm.DescribeConsumerGroups([]string{group})
	if err != nil || len(groups) != 1 {
		t.Fatalf("DescribeConsumerGroups: %v %+v", err, groups)
	}
	g := groups[0]
	if g.State != "Stable" || g.ProtocolType != "consumer" || len(g.Members) != 2 {
		t.Fatalf("group state %q protocol type %q members %d, want Stable consumer 2", g.State, g.ProtocolType, len(g.Members))
	}
	listed, err := adm.ListConsumerGroups()
	if err != nil || listed[group] != "consumer" {
		t.Fatalf("ListConsumerGroups: %v, %s -> %q", err, group, listed[group])
	}
}
