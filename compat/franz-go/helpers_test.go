// Package compat is gregor's franz-go compatibility suite: each Test* drives the real franz-go
// client (kgo, kadm) against a broker at GREGOR_BOOTSTRAP, which run.sh starts (gregor, or Apache
// Kafka with KAFKA_REFERENCE_LIBS=DIR). Every wait is on a condition with a deadline, never a sleep.
package compat

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var bootstrap string

func TestMain(m *testing.M) {
	bootstrap = os.Getenv("GREGOR_BOOTSTRAP")
	if bootstrap == "" {
		fmt.Fprintln(os.Stderr, "GREGOR_BOOTSTRAP is not set: run the suite through compat/franz-go/run.sh")
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// testLogger forwards franz-go's warnings and errors to the test log (shown on failure, or with -v).
type testLogger struct{ t testing.TB }

func (l testLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }
func (l testLogger) Log(level kgo.LogLevel, msg string, kv ...any) {
	l.t.Logf("kgo %s: %s %v", level, msg, kv)
}

// newClient makes a kgo client on the broker under test, closed when the test ends.
func newClient(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{
		kgo.SeedBrokers(bootstrap),
		kgo.WithLogger(testLogger{t}),
		kgo.RetryTimeout(30 * time.Second),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func newAdmin(t testing.TB) *kadm.Client {
	t.Helper()
	// kgo caches topic metadata for MetadataMinAge (5 s) and reuses it for kadm's requests; a
	// short age lets a test see a topic it just created or deleted without waiting that out.
	adm := kadm.NewClient(newClient(t, kgo.MetadataMinAge(100*time.Millisecond)))
	adm.SetTimeoutMillis(15000)
	return adm
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

var nameUnsafe = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// uniqueName returns a topic/group/transactional id unique to this test and run.
func uniqueName(t testing.TB, what string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	n := nameUnsafe.ReplaceAllString(strings.TrimPrefix(t.Name(), "Test"), "-")
	return fmt.Sprintf("fg-%s-%s-%s", strings.ToLower(n), what, hex.EncodeToString(b[:]))
}

// createTopic creates a topic with n partitions (replication factor 1) and waits until it is in
// the metadata with a leader for every partition.
func createTopic(t testing.TB, adm *kadm.Client, partitions int32, configs map[string]*string) string {
	t.Helper()
	topic := uniqueName(t, "t")
	ctx := ctxFor(t, 30*time.Second)
	resp, err := adm.CreateTopic(ctx, partitions, 1, configs, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("CreateTopic %s: %v / %v", topic, err, resp.Err)
	}
	waitTopic(t, adm, topic, partitions)
	return topic
}

// waitTopic waits until the metadata has topic with n partitions, each with a leader (Kafka
// propagates a new topic to its metadata cache after CreateTopics answers).
func waitTopic(t testing.TB, adm *kadm.Client, topic string, partitions int32) {
	t.Helper()
	ctx := ctxFor(t, 30*time.Second)
	waitFor(t, 30*time.Second, "topic "+topic+" has leaders", func() (bool, string) {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return false, err.Error()
		}
		td, ok := md.Topics[topic]
		if !ok || td.Err != nil || int32(len(td.Partitions)) != partitions {
			return false, fmt.Sprintf("%+v", td)
		}
		for _, p := range td.Partitions {
			if p.Leader < 0 || p.Err != nil {
				return false, fmt.Sprintf("partition %d: leader %d err %v", p.Partition, p.Leader, p.Err)
			}
		}
		return true, ""
	})
}

// waitFor polls cond until it holds or the deadline passes (then fails with cond's last note).
func waitFor(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, note := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", d, what, note)
		}
		time.Sleep(20 * time.Millisecond) // polling interval of a condition, not a wait by itself
	}
}

// consumeN polls cl until it has n records (failing on any fetch error or after d).
func consumeN(t testing.TB, cl *kgo.Client, n int, d time.Duration) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before the deadline (%v)", len(out), n, d)
		}
		for _, fe := range fs.Errors() {
			t.Fatalf("fetch error on %s[%d]: %v", fe.Topic, fe.Partition, fe.Err)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// endOffsets lists every partition's high watermark of topic.
func endOffsets(t testing.TB, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	lo, err := adm.ListEndOffsets(ctxFor(t, 15*time.Second), topic)
	if err != nil {
		t.Fatalf("ListEndOffsets: %v", err)
	}
	out := map[int32]int64{}
	for p, o := range lo[topic] {
		if o.Err != nil {
			t.Fatalf("ListEndOffsets %s[%d]: %v", topic, p, o.Err)
		}
		out[p] = o.Offset
	}
	return out
}

// consumeUntil polls cl until a record satisfies last (that record is included) and returns every
// record polled (failing on any fetch error or after d). Tests append a sentinel record and read
// up to it, so "nothing else is there" is known without waiting for silence.
func consumeUntil(t testing.TB, cl *kgo.Client, d time.Duration, last func(*kgo.Record) bool) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var out []*kgo.Record
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("the last record did not arrive before the deadline (%v); got %d records", d, len(out))
		}
		for _, fe := range fs.Errors() {
			t.Fatalf("fetch error on %s[%d]: %v", fe.Topic, fe.Partition, fe.Err)
		}
		for _, r := range fs.Records() {
			out = append(out, r)
			if last(r) {
				return out
			}
		}
	}
}

func isErr(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// sameBytes compares byte slices telling nil (Kafka null) from empty.
func sameBytes(a, b []byte) bool {
	if (a == nil) != (b == nil) {
		return false
	}
	return bytes.Equal(a, b)
}

func showBytes(b []byte) string {
	if b == nil {
		return "<null>"
	}
	return fmt.Sprintf("%q", b)
}
