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

// TestAdminRecordsAndGroupOffsets: ListOffsets (earliest, latest, by timestamp), DeleteRecords,
// the group offset calls (alter, list, delete one, delete the group), the broker's configs and
// log dirs, and the ACL calls on a broker without an authorizer (Kafka's SECURITY_DISABLED).
func TestAdminRecordsAndGroupOffsets(t *testing.T) {
	adm := newAdmin(t)
	topic := createTopic(t, adm, 2, nil)
	p, err := sarama.NewSyncProducer(bootstrap, func() *sarama.Config {
		cfg := newConfig(t)
		cfg.Producer.Partitioner = sarama.NewManualPartitioner
		return cfg
	}())
	if err != nil {
		t.Fatalf("NewSyncProducer: %v", err)
	}
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := 0; i < 10; i++ {
		_, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: 0, Value: sarama.StringEncoder(fmt.Sprint(i)),
			Timestamp: base.Add(time.Duration(i) * time.Minute)})
		if err != nil {
			t.Fatalf("SendMessage: %v", err)
		}
	}
	_ = p.Close()

	offsets := func(spec int64) (int64, int64) {
		t.Helper()
		res, err := adm.ListOffsets(map[string]map[int32]int64{topic: {0: spec, 1: spec}}, nil)
		if err != nil {
			t.Fatalf("ListOffsets(%d): %v", spec, err)
		}
		for p, r := range res[topic] {
			if r.Err != nil && !errors.Is(r.Err, sarama.ErrNoError) {
				t.Fatalf("ListOffsets(%d) partition %d: %+v", spec, p, r)
			}
		}
		return res[topic][0].Offset, res[topic][1].Offset
	}
	if e0, e1 := offsets(sarama.OffsetOldest); e0 != 0 || e1 != 0 {
		t.Fatalf("earliest offsets %d, %d, want 0, 0", e0, e1)
	}
	if l0, l1 := offsets(sarama.OffsetNewest); l0 != 10 || l1 != 0 {
		t.Fatalf("latest offsets %d, %d, want 10, 0", l0, l1)
	}
	// The first record at or after minute 4 is offset 4; none at all in the empty partition.
	if o0, o1 := offsets(base.Add(4*time.Minute - time.Second).UnixMilli()); o0 != 4 || o1 != -1 {
		t.Fatalf("offsets by timestamp %d, %d, want 4, -1", o0, o1)
	}

	if err := adm.DeleteRecords(topic, map[int32]int64{0: 6}); err != nil {
		t.Fatalf("DeleteRecords: %v", err)
	}
	if e0, _ := offsets(sarama.OffsetOldest); e0 != 6 {
		t.Fatalf("earliest offset after DeleteRecords = %d, want 6", e0)
	}
	got := consumePartition(t, newConfig(t), topic, 0, sarama.OffsetOldest, 30*time.Second, atLeast(4))
	if got[0].Offset != 6 || string(got[0].Value) != "6" {
		t.Fatalf("first record after DeleteRecords at %d = %q, want 6", got[0].Offset, got[0].Value)
	}

	// Group offsets without any member: alter, list, delete one partition's, delete the group.
	group := uniqueName(t, "g")
	// The first group call on a fresh broker may meet the offsets topic being created and
	// loaded (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS), which this Sarama call returns
	// rather than retries.
	waitFor(t, 30*time.Second, "AlterConsumerGroupOffsets", func() (bool, string) {
		r, err := adm.AlterConsumerGroupOffsets(group, map[string]map[int32]sarama.OffsetAndMetadata{
			topic: {0: {Offset: 7, Metadata: "m", LeaderEpoch: -1}, 1: {Offset: 0, LeaderEpoch: -1}}}, nil)
		if errors.Is(err, sarama.ErrNotCoordinatorForConsumer) || errors.Is(err, sarama.ErrOffsetsLoadInProgress) {
			return false, err.Error()
		}
		if err != nil {
			t.Fatalf("AlterConsumerGroupOffsets: %v", err)
		}
		for _, ps := range r.Errors {
			for p, kerr := range ps {
				if kerr != sarama.ErrNoError {
					t.Fatalf("AlterConsumerGroupOffsets partition %d: %v", p, kerr)
				}
			}
		}
		return true, ""
	})
	resp, err := adm.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1}})
	if err != nil {
		t.Fatalf("ListConsumerGroupOffsets: %v", err)
	}
	if b := resp.GetBlock(topic, 0); b == nil || b.Offset != 7 || b.Metadata != "m" {
		t.Fatalf("committed %s/0 = %+v, want 7 with metadata m", topic, b)
	}
	if err := adm.DeleteConsumerGroupOffset(group, topic, 1); err != nil {
		t.Fatalf("DeleteConsumerGroupOffset: %v", err)
	}
	resp, err = adm.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1}})
	if err != nil {
		t.Fatalf("ListConsumerGroupOffsets: %v", err)
	}
	if b := resp.GetBlock(topic, 1); b == nil || b.Offset != -1 {
		t.Fatalf("committed %s/1 after deleting it = %+v, want -1", topic, b)
	}
	if err := adm.DeleteConsumerGroup(group); err != nil {
		t.Fatalf("DeleteConsumerGroup: %v", err)
	}
	if err := adm.DeleteConsumerGroup(group); !errors.Is(err, sarama.ErrGroupIDNotFound) {
		t.Fatalf("deleting the group again: %v, want %v", err, sarama.ErrGroupIDNotFound)
	}

	// The broker's own configs and its log directory.
	brokers, _, err := adm.DescribeCluster()
	if err != nil || len(brokers) == 0 {
		t.Fatalf("DescribeCluster: %v", err)
	}
	id := fmt.Sprint(brokers[0].ID())
	entries, err := adm.DescribeConfig(sarama.ConfigResource{Type: sarama.BrokerResource, Name: id,
		ConfigNames: []string{"log.retention.hours", "num.partitions"}})
	if err != nil || len(entries) != 2 {
		t.Fatalf("DescribeConfig(broker %s): %v %+v", id, err, entries)
	}
	dirs, err := adm.DescribeLogDirs([]int32{brokers[0].ID()})
	if err != nil || len(dirs[brokers[0].ID()]) == 0 {
		t.Fatalf("DescribeLogDirs: %v %+v", err, dirs)
	}
	found := false
	for _, d := range dirs[brokers[0].ID()] {
		for _, tp := range d.Topics {
			found = found || tp.Topic == topic
		}
	}
	if !found {
		t.Fatalf("DescribeLogDirs does not list %s: %+v", topic, dirs)
	}

	_, err = adm.ListAcls(sarama.AclFilter{ResourceType: sarama.AclResourceAny, PermissionType: sarama.AclPermissionAny,
		Operation: sarama.AclOperationAny, ResourcePatternTypeFilter: sarama.AclPatternAny})
	if !errors.Is(err, sarama.ErrSecurityDisabled) {
		t.Fatalf("ListAcls without an authorizer: %v, want %v", err, sarama.ErrSecurityDisabled)
	}
}
