package compat

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	codecPartitions = 3
	codecRecords    = 300
)

// codecRecord builds record i of the codec tests: a null key every tenth record, a null value
// every 25th (a tombstone), an empty value every 25th+1, repeated/empty/null/non-ASCII headers,
// and an explicit CreateTime that is not monotonic within a batch.
func codecRecord(codec string, base time.Time, i int) *kgo.Record {
	r := &kgo.Record{
		Partition: int32(i % codecPartitions),
		Timestamp: base.Add(time.Duration((i*7)%codecRecords) * time.Millisecond),
		Headers: []kgo.RecordHeader{
			{Key: "codec", Value: []byte(codec)},
			{Key: "dup", Value: []byte("1")},
			{Key: "dup", Value: []byte("2")},
			{Key: "dup", Value: []byte("1")},
			{Key: "empty", Value: []byte{}},
			{Key: "nullval", Value: nil},
			{Key: "utf8", Value: []byte("ÄéüÆ日本")},
			{Key: "i", Value: []byte(fmt.Sprint(i))},
		},
	}
	if i%10 != 0 {
		r.Key = []byte(fmt.Sprintf("key-%d", i))
	}
	switch {
	case i%25 == 0:
		r.Value = nil
	case i%25 == 1:
		r.Value = []byte{}
	case i == 7:
		// One large record (256 KiB of text) in a batch of its own partition.
		r.Value = []byte(strings.Repeat(fmt.Sprintf("large value %d ", i), 256*1024/10)[:256*1024])
	default:
		r.Value = []byte(fmt.Sprintf("value %d %s", i, strings.Repeat("compressible ", i%40)))
	}
	return r
}

var codecs = map[string]struct {
	codec kgo.CompressionCodec
	attr  int8 // the batch attribute a consumer reads back
}{
	"none":   {kgo.NoCompression(), 0},
	"gzip":   {kgo.GzipCompression(), 1},
	"snappy": {kgo.SnappyCompression(), 2},
	"lz4":    {kgo.Lz4Compression(), 3},
	"zstd":   {kgo.ZstdCompression(), 4},
}

// testCodec produces codecRecords with an idempotent acks=all producer using the codec, and reads
// them back from the start with a direct consumer, comparing everything exactly.
func testCodec(t *testing.T, name string) {
	c := codecs[name]
	adm := newAdmin(t)
	topic := createTopic(t, adm, codecPartitions, nil)

	producer := newClient(t,
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotence is franz-go's default; it needs acks=all
		kgo.ProducerBatchCompression(c.codec),
		kgo.ProducerLinger(5*time.Millisecond),
	)
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond)
	var sent []*kgo.Record
	for i := 0; i < codecRecords; i++ {
		sent = append(sent, codecRecord(name, base, i))
	}
	ctx := ctxFor(t, 60*time.Second)
	if err := producer.ProduceSync(ctx, sent...).FirstErr(); err != nil {
		t.Fatalf("ProduceSync: %v", err)
	}
	// Offsets the producer was told, per partition, are 0..n-1 in send order.
	next := map[int32]int64{}
	for i, r := range sent {
		if r.Offset != next[r.Partition] {
			t.Fatalf("record %d: produced at %s[%d]@%d, want offset %d", i, r.Topic, r.Partition, r.Offset, next[r.Partition])
		}
		next[r.Partition]++
		if r.ProducerID < 0 {
			t.Fatalf("record %d: idempotent producer has producer id %d", i, r.ProducerID)
		}
	}
	for p, end := range endOffsets(t, adm, topic) {
		if end != next[p] {
			t.Fatalf("partition %d: end offset %d, want %d", p, end, next[p])
		}
	}

	consumer := newClient(t,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(1<<20), kgo.FetchMaxPartitionBytes(256*1024), // several fetches
	)
	got := consumeN(t, consumer, codecRecords, 60*time.Second)
	if len(got) != codecRecords {
		t.Fatalf("consumed %d records, want %d", len(got), codecRecords)
	}
	byKey := map[string]*kgo.Record{} // partition/offset -> sent record
	for _, r := range sent {
		byKey[fmt.Sprintf("%d/%d", r.Partition, r.Offset)] = r
	}
	for _, r := range got {
		want, ok := byKey[fmt.Sprintf("%d/%d", r.Partition, r.Offset)]
		if !ok {
			t.Fatalf("consumed unexpected record %s[%d]@%d", r.Topic, r.Partition, r.Offset)
		}
		delete(byKey, fmt.Sprintf("%d/%d", r.Partition, r.Offset))
		where := fmt.Sprintf("%s[%d]@%d", r.Topic, r.Partition, r.Offset)
		if !sameBytes(r.Key, want.Key) {
			t.Errorf("%s: key %s, want %s", where, showBytes(r.Key), showBytes(want.Key))
		}
		if !sameBytes(r.Value, want.Value) {
			t.Errorf("%s: value %.60s, want %.60s", where, showBytes(r.Value), showBytes(want.Value))
		}
		if !r.Timestamp.Equal(want.Timestamp) {
			t.Errorf("%s: timestamp %v, want %v", where, r.Timestamp.UnixMilli(), want.Timestamp.UnixMilli())
		}
		if r.Attrs.TimestampType() != 0 {
			t.Errorf("%s: timestamp type %d, want 0 (CreateTime)", where, r.Attrs.TimestampType())
		}
		if r.Attrs.CompressionType() != uint8(c.attr) {
			t.Errorf("%s: batch compression %d, want %d (%s)", where, r.Attrs.CompressionType(), c.attr, name)
		}
		if r.Attrs.IsTransactional() || r.Attrs.IsControl() {
			t.Errorf("%s: transactional/control attribute set on a plain idempotent record", where)
		}
		if r.ProducerID != want.ProducerID || r.ProducerEpoch != want.ProducerEpoch {
			t.Errorf("%s: producer %d/%d, want %d/%d", where, r.ProducerID, r.ProducerEpoch, want.ProducerID, want.ProducerEpoch)
		}
		if len(r.Headers) != len(want.Headers) {
			t.Errorf("%s: %d headers, want %d", where, len(r.Headers), len(want.Headers))
			continue
		}
		for h := range r.Headers {
			gh, wh := r.Headers[h], want.Headers[h]
			if gh.Key != wh.Key || !sameBytes(gh.Value, wh.Value) {
				t.Errorf("%s: header %d is %s=%s, want %s=%s", where, h, gh.Key, showBytes(gh.Value), wh.Key, showBytes(wh.Value))
			}
		}
	}
	if len(byKey) != 0 {
		t.Fatalf("%d produced records were not consumed", len(byKey))
	}
	// Per partition, records come back in offset order.
	last := map[int32]int64{}
	for _, r := range got {
		if prev, ok := last[r.Partition]; ok && r.Offset != prev+1 {
			t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, prev)
		}
		last[r.Partition] = r.Offset
	}
}

func TestProduceConsumeNone(t *testing.T)   { testCodec(t, "none") }
func TestProduceConsumeGzip(t *testing.T)   { testCodec(t, "gzip") }
func TestProduceConsumeSnappy(t *testing.T) { testCodec(t, "snappy") }
func TestProduceConsumeLz4(t *testing.T)    { testCodec(t, "lz4") }
func TestProduceConsumeZstd(t *testing.T)   { testCodec(t, "zstd") }

// TestProduceLogAppendTime: on a topic with message.timestamp.type=LogAppendTime the broker
// stamps the batch; consumers read that time back as LogAppendTime, not the producer's.
func TestProduceLogAppendTime(t *testing.T) {
	adm := newAdmin(t)
	topic := createTopic(t, adm, 1, map[string]*string{"message.timestamp.type": strp("LogAppendTime")})
	p := newClient(t, kgo.DefaultProduceTopic(topic))
	before := time.Now().Add(-time.Second)
	r := &kgo.Record{Value: []byte("stamped"), Timestamp: time.Now().Add(-time.Hour)}
	if err := p.ProduceSync(ctxFor(t, 30*time.Second), r).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	after := time.Now().Add(time.Second)
	c := newClient(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := consumeN(t, c, 1, 30*time.Second)[0]
	if got.Attrs.TimestampType() != 1 || got.Timestamp.Before(before) || got.Timestamp.After(after) {
		t.Errorf("consumed timestamp %v type %d, want type 1 (LogAppendTime), the append time (between %v and %v)",
			got.Timestamp, got.Attrs.TimestampType(), before, after)
	}
}

// TestProduceMessageTooLarge: a batch over the topic's max.message.bytes is refused with
// MESSAGE_TOO_LARGE; one under it is accepted.
func TestProduceMessageTooLarge(t *testing.T) {
	adm := newAdmin(t)
	topic := createTopic(t, adm, 1, map[string]*string{"max.message.bytes": strp("4096")})
	p := newClient(t, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordRetries(3))
	ctx := ctxFor(t, 30*time.Second)
	err := p.ProduceSync(ctx, &kgo.Record{Value: bytes.Repeat([]byte("x"), 8192)}).FirstErr()
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Errorf("producing 8 KiB to a 4 KiB topic: %v, want MESSAGE_TOO_LARGE", err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Value: bytes.Repeat([]byte("x"), 1024)}).FirstErr(); err != nil {
		t.Errorf("producing 1 KiB to a 4 KiB topic: %v", err)
	}
}
