package compat

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// TestOlderProtocolVersions: Sarama picks every request's version from config.Version, and many
// applications never set it (Sarama's default is 2.8) or pin an old one. With 2.8 and with 2.1
// (the oldest Kafka 4 still serves, KIP-896), an idempotent zstd producer, a consumer, a group
// member's commit and the admin topic calls work.
func TestOlderProtocolVersions(t *testing.T) {
	for _, v := range []sarama.KafkaVersion{sarama.DefaultVersion, sarama.V2_1_0_0} {
		t.Run(v.String(), func(t *testing.T) {
			versioned := func() *sarama.Config {
				cfg := newConfig(t)
				cfg.Version = v
				return cfg
			}
			adm, err := sarama.NewClusterAdmin(bootstrap, versioned())
			if err != nil {
				t.Fatalf("NewClusterAdmin: %v", err)
			}
			defer func() { _ = adm.Close() }()
			topic := createTopic(t, adm, 1, map[string]*string{"retention.ms": strp("600000")})
			if val, src := topicConfig(t, adm, topic, "retention.ms"); val != "600000" || src != sarama.SourceTopic {
				t.Fatalf("retention.ms = %q (%v)", val, src)
			}

			cfg := versioned()
			cfg.Producer.Idempotent = true
			cfg.Net.MaxOpenRequests = 1
			cfg.Producer.Compression = sarama.CompressionZSTD
			p, err := sarama.NewSyncProducer(bootstrap, cfg)
			if err != nil {
				t.Fatalf("NewSyncProducer: %v", err)
			}
			var msgs []*sarama.ProducerMessage
			for i := 0; i < 10; i++ {
				msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder("k"),
					Value: sarama.StringEncoder(fmt.Sprintf("v%d", i))})
			}
			if err := p.SendMessages(msgs); err != nil {
				t.Fatalf("SendMessages: %v", err)
			}
			_ = p.Close()
			got := consumePartition(t, versioned(), topic, 0, sarama.OffsetOldest, 30*time.Second, atLeast(10))
			for i, m := range got {
				if string(m.Value) != fmt.Sprintf("v%d", i) || m.Offset != int64(i) {
					t.Fatalf("record %d = %q at %d", i, m.Value, m.Offset)
				}
			}

			// One group member consumes everything and commits it.
			gcfg := versioned()
			gcfg.Consumer.Offsets.AutoCommit.Enable = false
			gcfg.Consumer.Group.Rebalance.Retry.Backoff = 100 * time.Millisecond
			gcfg.Consumer.Group.Rebalance.Retry.Max = 100
			group := uniqueName(t, "g")
			cg, err := sarama.NewConsumerGroup(bootstrap, group, gcfg)
			if err != nil {
				t.Fatalf("NewConsumerGroup: %v", err)
			}
			glog := newGroupLog()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- cg.Consume(ctx, []string{topic}, &member{name: "solo", log: glog}) }()
			waitFor(t, 60*time.Second, "the member to consume 10 records", func() (bool, string) {
				distinct, _, claims := glog.snapshot()
				return distinct == 10, fmt.Sprintf("%d consumed, claims %v", distinct, claims)
			})
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Consume: %v", err)
			}
			_ = cg.Close()
			waitFor(t, 30*time.Second, "the commit of offset 10", func() (bool, string) {
				resp, err := adm.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0}})
				if err != nil {
					return false, err.Error()
				}
				b := resp.GetBlock(topic, 0)
				return b != nil && b.Offset == 10, fmt.Sprintf("%+v", b)
			})

			if err := adm.DeleteTopic(topic); err != nil {
				t.Fatalf("DeleteTopic: %v", err)
			}
		})
	}
}
