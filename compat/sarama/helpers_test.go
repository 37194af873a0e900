// Package compat is gregor's Sarama compatibility suite: each Test* drives the real IBM/sarama
// client (producers, consumers, consumer groups, ClusterAdmin, transactions) against a broker at
// GREGOR_BOOTSTRAP, which run.sh starts (gregor, or Apache Kafka with KAFKA_REFERENCE_LIBS=DIR).
// Every wait is on a condition with a deadline, never a sleep.
package compat

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

var bootstrap []string

func TestMain(m *testing.M) {
	b := os.Getenv("GREGOR_BOOTSTRAP")
	if b == "" {
		fmt.Fprintln(os.Stderr, "GREGOR_BOOTSTRAP is not set: run the suite through compat/sarama/run.sh")
		os.Exit(2)
	}
	bootstrap = strings.Split(b, ",")
	// Sarama logs through one package-level logger (not per client); SARAMA_LOG=1 shows it.
	if os.Getenv("SARAMA_LOG") != "" {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.LstdFlags|log.Lmicroseconds)
	}
	os.Exit(m.Run())
}

// newConfig is the base client configuration: the newest protocol version this Sarama knows
// (it picks each request's version from it), waits bounded so a broken broker fails a case
// rather than hanging it.
func newConfig(t testing.TB) *sarama.Config {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.MaxVersion
	cfg.ClientID = "gregor-compat-sarama"
	cfg.Metadata.Retry.Max = 20
	cfg.Metadata.Retry.Backoff = 250 * time.Millisecond
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Retry.Max = 10
	cfg.Producer.Retry.Backoff = 200 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Admin.Timeout = 15 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// newAdmin makes a ClusterAdmin on the broker under test, closed when the test ends.
func newAdmin(t testing.TB) sarama.ClusterAdmin {
	t.Helper()
	adm, err := sarama.NewClusterAdmin(bootstrap, newConfig(t))
	if err != nil {
		t.Fatalf("NewClusterAdmin: %v", err)
	}
	t.Cleanup(func() { _ = adm.Close() })
	return adm
}

var nameUnsafe = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// uniqueName returns a topic/group/transactional id unique to this test and run.
func uniqueName(t testing.TB, what string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	n := nameUnsafe.ReplaceAllString(strings.TrimPrefix(t.Name(), "Test"), "-")
	return fmt.Sprintf("sr-%s-%s-%s", strings.ToLower(n), what, hex.EncodeToString(b[:]))
}

// createTopic creates a topic with n partitions (replication factor 1) and waits until the
// metadata has a leader for every partition.
func createTopic(t testing.TB, adm sarama.ClusterAdmin, partitions int32, configs map[string]*string) string {
	t.Helper()
	topic := uniqueName(t, "t")
	err := adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1, ConfigEntries: configs}, false)
	if err != nil {
		t.Fatalf("CreateTopic %s: %v", topic, err)
	}
	waitTopic(t, adm, topic, partitions)
	return topic
}

// waitTopic waits until the metadata has topic with n partitions, each with a leader (Kafka
// propagates a new topic to its metadata cache after CreateTopics answers).
func waitTopic(t testing.TB, adm sarama.ClusterAdmin, topic string, partitions int32) {
	t.Helper()
	waitFor(t, 30*time.Second, "topic "+topic+" has leaders", func() (bool, string) {
		md, err := adm.DescribeTopics([]string{topic})
		if err != nil {
			return false, err.Error()
		}
		if len(md) != 1 || md[0].Err != sarama.ErrNoError || int32(len(md[0].Partitions)) != partitions {
			return false, fmt.Sprintf("%+v", md)
		}
		for _, p := range md[0].Partitions {
			if p.Leader < 0 || p.Err != sarama.ErrNoError {
				return false, fmt.Sprintf("partition %d: leader %d err %v", p.ID, p.Leader, p.Err)
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
		time.Sleep(50 * time.Millisecond)
	}
}

// consumePartition reads partition p of topic from offset with a plain Consumer (cfg decides the
// isolation level) until stop says it has enough, or fails the test after d.
func consumePartition(t testing.TB, cfg *sarama.Config, topic string, p int32, offset int64, d time.Duration,
	stop func([]*sarama.ConsumerMessage) bool) []*sarama.ConsumerMessage {
	t.Helper()
	c, err := sarama.NewConsumer(bootstrap, cfg)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	defer func() { _ = c.Close() }()
	pc, err := c.ConsumePartition(topic, p, offset)
	if err != nil {
		t.Fatalf("ConsumePartition %s/%d: %v", topic, p, err)
	}
	defer func() { _ = pc.Close() }()
	var got []*sarama.ConsumerMessage
	timeout := time.After(d)
	for !stop(got) {
		select {
		case m := <-pc.Messages():
			got = append(got, m)
		case err := <-pc.Errors():
			t.Fatalf("consuming %s/%d: %v", topic, p, err)
		case <-timeout:
			t.Fatalf("timed out after %v consuming %s/%d: %d records so far", d, topic, p, len(got))
		}
	}
	return got
}

func atLeast(n int) func([]*sarama.ConsumerMessage) bool {
	return func(got []*sarama.ConsumerMessage) bool { return len(got) >= n }
}

func strp(s string) *string { return &s }
