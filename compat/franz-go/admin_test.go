package compat

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

func strp(s string) *string { return &s }

// TestAdminTopics: kadm creates, describes, alters, grows and deletes a topic, and gets Kafka's
// errors for the invalid requests.
func TestAdminTopics(t *testing.T) {
	adm := newAdmin(t)
	ctx := ctxFor(t, 90*time.Second)
	topic := uniqueName(t, "t")

	brokers, err := adm.ListBrokers(ctx)
	if err != nil || len(brokers) != 1 {
		t.Fatalf("ListBrokers: %v %v, want one broker", brokers, err)
	}
	node := brokers[0].NodeID

	// Validate-only creates nothing.
	vr, err := adm.ValidateCreateTopics(ctx, 3, 1, nil, topic)
	if err != nil || vr[topic].Err != nil {
		t.Fatalf("ValidateCreateTopics: %v / %v", err, vr[topic].Err)
	}
	if md, err := adm.ListTopics(ctx, topic); err != nil || md.Has(topic) {
		t.Fatalf("a validate-only create made the topic: %v %v", md, err)
	}

	cr, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{
		"retention.ms":   strp("3600000"),
		"cleanup.policy": strp("compact"),
	}, topic)
	if err != nil || cr.Err != nil {
		t.Fatalf("CreateTopic: %v / %v", err, cr.Err)
	}
	if cr.NumPartitions != 3 || cr.ReplicationFactor != 1 || cr.ID == (kadm.TopicID{}) {
		t.Errorf("create response %+v: want 3 partitions, replication 1, a topic id", cr)
	}

	// Kafka's errors for the invalid creates.
	for _, c := range []struct {
		what       string
		topic      string
		partitions int32
		rf         int16
		configs    map[string]*string
		want       error
	}{
		{"an existing topic", topic, 3, 1, nil, kerr.TopicAlreadyExists},
		{"replication factor 3 on one broker", uniqueName(t, "rf"), 1, 3, nil, kerr.InvalidReplicationFactor},
		{"an invalid config value", uniqueName(t, "cfg"), 1, 1, map[string]*string{"cleanup.policy": strp("bogus")}, kerr.InvalidConfig},
		{"an unknown config", uniqueName(t, "cfg"), 1, 1, map[string]*string{"no.such.config": strp("1")}, kerr.InvalidConfig},
		{"an invalid name", "bad name!", 1, 1, nil, kerr.InvalidTopicException},
		{"zero partitions", uniqueName(t, "p"), 0, 1, nil, kerr.InvalidPartitions},
	} {
		r, err := adm.CreateTopic(ctx, c.partitions, c.rf, c.configs, c.topic)
		if err == nil {
			err = r.Err
		}
		if !errors.Is(err, c.want) {
			t.Errorf("creating %s: %v, want %v", c.what, err, c.want)
		}
	}

	waitTopic(t, adm, topic, 3)
	md, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatalf("ListTopics: %v", err)
	}
	td := md[topic]
	if td.Err != nil || td.ID != cr.ID || td.IsInternal || len(td.Partitions) != 3 {
		t.Fatalf("described topic %+v: want 3 partitions and the created id", td)
	}
	for _, p := range td.Partitions.Sorted() {
		if p.Leader != node || len(p.Replicas) != 1 || p.Replicas[0] != node || len(p.ISR) != 1 || p.Err != nil {
			t.Errorf("partition %+v: want leader, replicas and isr [%d]", p, node)
		}
	}

	configValue := func(name string) (string, string) {
		rcs, err := adm.DescribeTopicConfigs(ctx, topic)
		if err != nil {
			t.Fatalf("DescribeTopicConfigs: %v", err)
		}
		rc, err := rcs.On(topic, nil)
		if err != nil || rc.Err != nil {
			t.Fatalf("DescribeTopicConfigs %s: %v / %v", topic, err, rc.Err)
		}
		for _, c := range rc.Configs {
			if c.Key == name {
				return c.MaybeValue(), c.Source.String()
			}
		}
		t.Fatalf("config %s not described", name)
		return "", ""
	}
	if v, src := configValue("retention.ms"); v != "3600000" || src != "DYNAMIC_TOPIC_CONFIG" {
		t.Errorf("retention.ms = %s (%s), want 3600000 (DYNAMIC_TOPIC_CONFIG)", v, src)
	}
	if v, _ := configValue("cleanup.policy"); v != "compact" {
		t.Errorf("cleanup.policy = %s, want compact", v)
	}
	if v, src := configValue("max.message.bytes"); v != "1048588" || src != "DEFAULT_CONFIG" {
		t.Errorf("max.message.bytes = %s (%s), want 1048588 (DEFAULT_CONFIG)", v, src)
	}

	// Incremental alter: set one, delete another (back to the default).
	ar, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "retention.ms", Value: strp("7200000")},
		{Op: kadm.DeleteConfig, Name: "cleanup.policy"},
	}, topic)
	if err != nil || ar[0].Err != nil {
		t.Fatalf("AlterTopicConfigs: %v / %v", err, ar)
	}
	if v, _ := configValue("retention.ms"); v != "7200000" {
		t.Errorf("retention.ms after alter = %s, want 7200000", v)
	}
	if v, src := configValue("cleanup.policy"); v != "delete" || src != "DEFAULT_CONFIG" {
		t.Errorf("cleanup.policy after delete = %s (%s), want delete (DEFAULT_CONFIG)", v, src)
	}
	ar, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: strp("soon")}}, topic)
	if err == nil && len(ar) == 1 {
		err = ar[0].Err
	}
	if !errors.Is(err, kerr.InvalidConfig) {
		t.Errorf("altering retention.ms to a non-number: %v, want INVALID_CONFIG", err)
	}

	// Grow to 5 partitions; shrinking is refused.
	pr, err := adm.UpdatePartitions(ctx, 5, topic)
	if err != nil || pr[topic].Err != nil {
		t.Fatalf("UpdatePartitions to 5: %v / %v", err, pr[topic].Err)
	}
	waitFor(t, 30*time.Second, "the topic to have 5 partitions", func() (bool, string) {
		md, err := adm.ListTopics(ctx, topic)
		return err == nil && len(md[topic].Partitions) == 5, fmt.Sprintf("%v %v", md[topic].Partitions, err)
	})
	pr, err = adm.UpdatePartitions(ctx, 2, topic)
	if err == nil {
		err = pr[topic].Err
	}
	if !errors.Is(err, kerr.InvalidPartitions) {
		t.Errorf("shrinking to 2 partitions: %v, want INVALID_PARTITIONS", err)
	}

	// Delete; then it is gone and deleting again fails.
	dr, err := adm.DeleteTopic(ctx, topic)
	if err != nil || dr.Err != nil {
		t.Fatalf("DeleteTopic: %v / %v", err, dr.Err)
	}
	waitFor(t, 30*time.Second, "the deleted topic to leave the metadata", func() (bool, string) {
		md, err := adm.Metadata(ctx, topic)
		if err != nil {
			return false, err.Error()
		}
		td, ok := md.Topics[topic]
		return ok && errors.Is(td.Err, kerr.UnknownTopicOrPartition), fmt.Sprintf("%+v", td)
	})
	dr, err = adm.DeleteTopic(ctx, topic)
	if err == nil {
		err = dr.Err
	}
	if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("deleting a deleted topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
}

// TestAdminListOffsets: start, end, committed (read_committed), by timestamp and max timestamp.
func TestAdminListOffsets(t *testing.T) {
	adm := newAdmin(t)
	ctx := ctxFor(t, 60*time.Second)
	topic := createTopic(t, adm, 2, nil)

	// Ten records on partition 0, one a second apart, except offset 5 which is 20 s ahead.
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	p := newClient(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var rs []*kgo.Record
	for i := 0; i < 10; i++ {
		ts := base.Add(time.Duration(i) * time.Second)
		if i == 5 {
			ts = base.Add(20 * time.Second)
		}
		rs = append(rs, &kgo.Record{Partition: 0, Timestamp: ts, Value: []byte(fmt.Sprint(i))})
	}
	if err := p.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	check := func(what string, lo kadm.ListedOffsets, err error, want map[int32][2]int64) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for part, w := range want {
			o, ok := lo.Lookup(topic, part)
			if !ok || o.Err != nil || o.Offset != w[0] || (w[1] != 0 && o.Timestamp != w[1]) {
				t.Errorf("%s partition %d: %+v, want offset %d timestamp %d", what, part, o, w[0], w[1])
			}
		}
	}
	lo, err := adm.ListStartOffsets(ctx, topic)
	check("start", lo, err, map[int32][2]int64{0: {0, 0}, 1: {0, 0}})
	lo, err = adm.ListEndOffsets(ctx, topic)
	check("end", lo, err, map[int32][2]int64{0: {10, 0}, 1: {0, 0}})
	lo, err = adm.ListCommittedOffsets(ctx, topic)
	check("committed (read_committed end)", lo, err, map[int32][2]int64{0: {10, 0}, 1: {0, 0}})
	ms := base.Add(2500 * time.Millisecond).UnixMilli()
	lo, err = adm.ListOffsetsAfterMilli(ctx, ms, topic)
	check("after 2.5 s", lo, err, map[int32][2]int64{0: {3, base.Add(3 * time.Second).UnixMilli()}, 1: {0, 0}})
	lo, err = adm.ListOffsetsAfterMilli(ctx, base.Add(9500*time.Millisecond).UnixMilli(), topic)
	check("after 9.5 s (only the 20 s record)", lo, err, map[int32][2]int64{0: {5, base.Add(20 * time.Second).UnixMilli()}})
	lo, err = adm.ListOffsetsAfterMilli(ctx, base.Add(time.Minute).UnixMilli(), topic)
	check("after every record (kadm: the end offset)", lo, err, map[int32][2]int64{0: {10, 0}})
	lo, err = adm.ListMaxTimestampOffsets(ctx, topic)
	check("max timestamp", lo, err, map[int32][2]int64{0: {5, base.Add(20 * time.Second).UnixMilli()}})

	// An unknown topic is reported as such.
	missing := uniqueName(t, "missing")
	lo, err = adm.ListEndOffsets(ctx, missing)
	if err != nil {
		t.Fatalf("ListEndOffsets of a missing topic: %v", err)
	}
	if o, ok := lo.Lookup(missing, -1); !ok || !errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("ListEndOffsets of a missing topic: %+v, want UNKNOWN_TOPIC_OR_PARTITION", lo)
	}
}

// TestAdminDeleteRecords: DeleteRecords moves the log start offset; consumers start there;
// Kafka's errors for an offset past the end and an unknown partition.
func TestAdminDeleteRecords(t *testing.T) {
	adm := newAdmin(t)
	ctx := ctxFor(t, 60*time.Second)
	topic := createTopic(t, adm, 2, nil)
	p := newClient(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var rs []*kgo.Record
	for i := 0; i < 200; i++ {
		rs = append(rs, &kgo.Record{Partition: int32(i % 2), Value: []byte(fmt.Sprint(i))})
	}
	if err := p.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}

	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: 0, At: 40})
	os.Add(kadm.Offset{Topic: topic, Partition: 1, At: -1}) // -1: up to the high watermark
	dr, err := adm.DeleteRecords(ctx, os)
	if err != nil || dr.Error() != nil {
		t.Fatalf("DeleteRecords: %v / %v", err, dr.Error())
	}
	for part, want := range map[int32]int64{0: 40, 1: 100} {
		if r, ok := dr.Lookup(topic, part); !ok || r.LowWatermark != want {
			t.Errorf("partition %d: low watermark %+v, want %d", part, r, want)
		}
	}
	lo, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListStartOffsets: %v", err)
	}
	for part, want := range map[int32]int64{0: 40, 1: 100} {
		if o, _ := lo.Lookup(topic, part); o.Offset != want {
			t.Errorf("partition %d: start offset %d, want %d", part, o.Offset, want)
		}
	}

	// Deleting below the start offset is a no-op; past the end, or on a missing partition, fails.
	os = kadm.Offsets{}
	os.Add(kadm.Offset{Topic: topic, Partition: 0, At: 10})
	if dr, err = adm.DeleteRecords(ctx, os); err != nil || dr.Error() != nil {
		t.Fatalf("DeleteRecords below the start: %v / %v", err, dr.Error())
	} else if r, _ := dr.Lookup(topic, 0); r.LowWatermark != 40 {
		t.Errorf("deleting below the start moved the low watermark to %d", r.LowWatermark)
	}
	os = kadm.Offsets{}
	os.Add(kadm.Offset{Topic: topic, Partition: 0, At: 500})
	if dr, err = adm.DeleteRecords(ctx, os); err != nil {
		t.Fatalf("DeleteRecords past the end: %v", err)
	} else if r, _ := dr.Lookup(topic, 0); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Errorf("deleting past the end: %+v, want OFFSET_OUT_OF_RANGE", r)
	}
	os = kadm.Offsets{}
	os.Add(kadm.Offset{Topic: topic, Partition: 7, At: 1})
	if dr, err = adm.DeleteRecords(ctx, os); err == nil {
		if r, _ := dr.Lookup(topic, 7); !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
			err = r.Err
			t.Errorf("deleting in a missing partition: %+v, want UNKNOWN_TOPIC_OR_PARTITION", r)
		}
	} else if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("deleting in a missing partition: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}

	// A consumer from the start reads partition 0 from offset 40 and nothing of partition 1; one
	// asking for offset 5 (now deleted) gets OFFSET_OUT_OF_RANGE and resets to the start, 40.
	for _, from := range []kgo.Offset{kgo.NewOffset().AtStart(), kgo.NewOffset().At(5)} {
		c := newClient(t,
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: from, 1: kgo.NewOffset().AtStart()}}),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		)
		got := consumeN(t, c, 60, 30*time.Second)
		for i, r := range got {
			if r.Partition != 0 || r.Offset != int64(40+i) {
				t.Fatalf("from %v: record %d is %s[%d]@%d, want partition 0 offset %d", from, i, r.Topic, r.Partition, r.Offset, 40+i)
			}
		}
		c.Close()
	}
}
