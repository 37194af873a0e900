package compat

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// topicConfig returns the value and source of one topic config as DescribeConfig reports it.
func topicConfig(t *testing.T, adm sarama.ClusterAdmin, topic, name string) (string, sarama.ConfigSource) {
	t.Helper()
	entries, err := adm.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{name}})
	if err != nil {
		t.Fatalf("DescribeConfig %s %s: %v", topic, name, err)
	}
	for _, e := range entries {
		if e.Name == name {
			return e.Value, e.Source
		}
	}
	t.Fatalf("DescribeConfig %s: no %s in %+v", topic, name, entries)
	return "", 0
}

// TestAdminTopicsAndConfigs: ClusterAdmin creates a topic with configs, describes it (partitions,
// leaders, configs with their sources), alters configs (AlterConfigs and IncrementalAlterConfigs),
// adds partitions, lists it, refuses a duplicate and a bad request with Kafka's errors, and deletes it.
func TestAdminTopicsAndConfigs(t *testing.T) {
	adm := newAdmin(t)

	brokers, controller, err := adm.DescribeCluster()
	if err != nil || len(brokers) == 0 {
		t.Fatalf("DescribeCluster: %v %v", err, brokers)
	}
	t.Logf("cluster: %d broker(s), controller %d", len(brokers), controller)

	topic := createTopic(t, adm, 2, map[string]*string{"retention.ms": strp("3600000"), "cleanup.policy": strp("compact")})

	md, err := adm.DescribeTopics([]string{topic})
	if err != nil || len(md) != 1 || len(md[0].Partitions) != 2 {
		t.Fatalf("DescribeTopics: %v %+v", err, md)
	}
	for _, p := range md[0].Partitions {
		if len(p.Replicas) != 1 || len(p.Isr) != 1 || p.Replicas[0] != p.Leader {
			t.Fatalf("partition %d: leader %d replicas %v isr %v", p.ID, p.Leader, p.Replicas, p.Isr)
		}
	}

	if v, src := topicConfig(t, adm, topic, "retention.ms"); v != "3600000" || src != sarama.SourceTopic {
		t.Fatalf("retention.ms = %q (source %v), want 3600000 from the topic", v, src)
	}
	if v, src := topicConfig(t, adm, topic, "cleanup.policy"); v != "compact" || src != sarama.SourceTopic {
		t.Fatalf("cleanup.policy = %q (source %v), want compact from the topic", v, src)
	}
	if v, src := topicConfig(t, adm, topic, "max.message.bytes"); v == "" || src == sarama.SourceTopic {
		t.Fatalf("max.message.bytes = %q (source %v), want a default", v, src)
	}

	// Incremental: set one, delete another (back to its default).
	err = adm.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
		"segment.ms":     {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: strp("7200000")},
		"cleanup.policy": {Operation: sarama.IncrementalAlterConfigsOperationDelete},
	}, false)
	if err != nil {
		t.Fatalf("IncrementalAlterConfig: %v", err)
	}
	waitFor(t, 15*time.Second, "the incremental change to show", func() (bool, string) {
		seg, _ := topicConfig(t, adm, topic, "segment.ms")
		cp, src := topicConfig(t, adm, topic, "cleanup.policy")
		return seg == "7200000" && cp == "delete" && src != sarama.SourceTopic,
			fmt.Sprintf("segment.ms=%s cleanup.policy=%s (%v)", seg, cp, src)
	})
	// AlterConfigs replaces the topic's whole set: retention.ms and segment.ms go back to defaults.
	if err := adm.AlterConfig(sarama.TopicResource, topic, map[string]*string{"max.message.bytes": strp("65536")}, false); err != nil {
		t.Fatalf("AlterConfig: %v", err)
	}
	waitFor(t, 15*time.Second, "the replacing change to show", func() (bool, string) {
		mmb, _ := topicConfig(t, adm, topic, "max.message.bytes")
		_, rsrc := topicConfig(t, adm, topic, "retention.ms")
		return mmb == "65536" && rsrc != sarama.SourceTopic, fmt.Sprintf("max.message.bytes=%s retention.ms source %v", mmb, rsrc)
	})
	// A value the broker refuses: Kafka's INVALID_CONFIG.
	err = adm.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
		"retention.ms": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: strp("not-a-number")},
	}, false)
	if !errors.Is(err, sarama.ErrInvalidConfig) {
		t.Fatalf("IncrementalAlterConfig with a bad value: %v, want %v", err, sarama.ErrInvalidConfig)
	}

	if err := adm.CreatePartitions(topic, 3, nil, false); err != nil {
		t.Fatalf("CreatePartitions: %v", err)
	}
	waitTopic(t, adm, topic, 3)

	topics, err := adm.ListTopics()
	if err != nil {
		t.Fatalf("ListTopics: %v", err)
	}
	if d, ok := topics[topic]; !ok || d.NumPartitions != 3 || d.ConfigEntries["max.message.bytes"] == nil {
		t.Fatalf("ListTopics[%s] = %+v (present %v)", topic, d, ok)
	}

	err = adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
	if !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		t.Fatalf("creating %s again: %v, want %v", topic, err, sarama.ErrTopicAlreadyExists)
	}
	err = adm.CreateTopic(uniqueName(t, "bad"), &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"cleanup.policy": strp("sideways")}}, false)
	if !errors.Is(err, sarama.ErrInvalidConfig) {
		t.Fatalf("creating with a bad cleanup.policy: %v, want %v", err, sarama.ErrInvalidConfig)
	}
	// validateOnly checks without creating.
	ghost := uniqueName(t, "ghost")
	if err := adm.CreateTopic(ghost, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, true); err != nil {
		t.Fatalf("CreateTopic validateOnly: %v", err)
	}

	if err := adm.DeleteTopic(topic); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	waitFor(t, 30*time.Second, "the topic to be gone", func() (bool, string) {
		md, err := adm.DescribeTopics([]string{topic, ghost})
		if err != nil {
			return false, err.Error()
		}
		for _, m := range md {
			if m.Err != sarama.ErrUnknownTopicOrPartition {
				return false, fmt.Sprintf("%s: %v", m.Name, m.Err)
			}
		}
		return true, ""
	})
	if err := adm.DeleteTopic(topic); !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		t.Fatalf("deleting %s again: %v, want %v", topic, err, sarama.ErrUnknownTopicOrPartition)
	}
}
