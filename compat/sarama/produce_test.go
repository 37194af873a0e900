package compat

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

var codecs = []sarama.CompressionCodec{
	sarama.CompressionNone, sarama.CompressionGZIP, sarama.CompressionSnappy,
	sarama.CompressionLZ4, sarama.CompressionZSTD,
}

// record i of a batch: a key, a value long and repetitive enough for every codec to shrink it, a
// header, and a timestamp the broker keeps (CreateTime).
func codecMessage(topic string, producer string, i int, ts time.Time) *sarama.ProducerMessage {
	return &sarama.ProducerMessage{
		Topic:     topic,
		Partition: 0,
		Key:       sarama.StringEncoder(fmt.Sprintf("%s-k%d", producer, i)),
		Value:     sarama.StringEncoder(fmt.Sprintf("%s-%d:%s", producer, i, strings.Repeat("gregor ", 100))),
		Headers:   []sarama.RecordHeader{{Key: []byte("n"), Value: []byte(fmt.Sprint(i))}},
		Timestamp: ts.Add(time.Duration(i) * time.Millisecond),
	}
}

// TestProduceConsumeCodecs: for each codec, a plain SyncProducer and an idempotent one each send
// a batch to one partition; a Consumer reads all of them back from the start, in order, with keys,
// values, headers and timestamps intact, at the offsets the producers were told.
func TestProduceConsumeCodecs(t *testing.T) {
	adm := newAdmin(t)
	for _, codec := range codecs {
		t.Run(codec.String(), func(t *testing.T) {
			t.Parallel()
			topic := createTopic(t, adm, 1, nil)
			const n = 20
			ts := time.Now().Truncate(time.Millisecond).Add(-time.Hour)
			var want []*sarama.ProducerMessage
			for _, idempotent := range []bool{false, true} {
				cfg := newConfig(t)
				cfg.Producer.Compression = codec
				name := "plain"
				if idempotent {
					name = "idem"
					cfg.Producer.Idempotent = true
					cfg.Net.MaxOpenRequests = 1
				}
				cfg.Producer.Flush.Messages = n // one batch per SendMessages
				cfg.Producer.Flush.Frequency = 50 * time.Millisecond
				p, err := sarama.NewSyncProducer(bootstrap, cfg)
				if err != nil {
					t.Fatalf("NewSyncProducer(%s): %v", name, err)
				}
				var msgs []*sarama.ProducerMessage
				for i := 0; i < n; i++ {
					msgs = append(msgs, codecMessage(topic, name, i, ts))
				}
				if err := p.SendMessages(msgs); err != nil {
					t.Fatalf("SendMessages(%s, %s): %v", name, codec, err)
				}
				// A single message after the batch: SendMessage reports its offset.
				last := codecMessage(topic, name, n, ts)
				_, off, err := p.SendMessage(last)
				if err != nil {
					t.Fatalf("SendMessage(%s, %s): %v", name, codec, err)
				}
				msgs = append(msgs, last)
				if err := p.Close(); err != nil {
					t.Fatalf("Close(%s): %v", name, err)
				}
				for i, m := range msgs {
					if want := int64(len(want) + i); m.Offset != want {
						t.Fatalf("%s message %d acknowledged at offset %d, want %d", name, i, m.Offset, want)
					}
				}
				if off != msgs[len(msgs)-1].Offset {
					t.Fatalf("SendMessage offset %d, message says %d", off, msgs[len(msgs)-1].Offset)
				}
				want = append(want, msgs...)
			}

			got := consumePartition(t, newConfig(t), topic, 0, sarama.OffsetOldest, 30*time.Second, atLeast(len(want)))
			if len(got) != len(want) {
				t.Fatalf("consumed %d records, want %d", len(got), len(want))
			}
			for i, m := range got {
				w := want[i]
				wk, _ := w.Key.Encode()
				wv, _ := w.Value.Encode()
				if m.Offset != int64(i) || !bytes.Equal(m.Key, wk) || !bytes.Equal(m.Value, wv) {
					t.Fatalf("record %d: offset %d key %q value %.20q..., want key %q value %.20q...", i, m.Offset, m.Key, m.Value, wk, wv)
				}
				if len(m.Headers) != 1 || string(m.Headers[0].Key) != "n" || !bytes.Equal(m.Headers[0].Value, w.Headers[0].Value) {
					t.Fatalf("record %d headers %+v, want %+v", i, m.Headers, w.Headers)
				}
				if !m.Timestamp.Equal(w.Timestamp) {
					t.Fatalf("record %d timestamp %v, want %v", i, m.Timestamp, w.Timestamp)
				}
			}
		})
	}
}

// TestIdempotentProducerAcrossPartitions: an idempotent AsyncProducer spreads keyed records over
// three partitions; every record is acknowledged once and each partition's records come back in
// the order they were sent (the sequence numbers the broker checks).
func TestIdempotentProducerAcrossPartitions(t *testing.T) {
	adm := newAdmin(t)
	topic := createTopic(t, adm, 3, nil)
	cfg := newConfig(t)
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Compression = sarama.CompressionZSTD
	cfg.Producer.Partitioner = sarama.NewHashPartitioner
	p, err := sarama.NewAsyncProducer(bootstrap, cfg)
	if err != nil {
		t.Fatalf("NewAsyncProducer: %v", err)
	}
	const n = 300
	go func() {
		for i := 0; i < n; i++ {
			p.Input() <- &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprintf("k%d", i%7)),
				Value: sarama.StringEncoder(fmt.Sprintf("%d", i))}
		}
	}()
	perPartition := map[int32][]string{}
	timeout := time.After(60 * time.Second)
	for acked := 0; acked < n; acked++ {
		select {
		case m := <-p.Successes():
			v, _ := m.Value.Encode()
			perPartition[m.Partition] = append(perPartition[m.Partition], string(v))
		case err := <-p.Errors():
			t.Fatalf("produce error: %v", err)
		case <-timeout:
			t.Fatalf("timed out with %d of %d acknowledged", acked, n)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if len(perPartition) < 2 {
		t.Fatalf("keys landed on %d partitions, want several", len(perPartition))
	}
	for part, sent := range perPartition {
		got := consumePartition(t, newConfig(t), topic, part, sarama.OffsetOldest, 30*time.Second, atLeast(len(sent)))
		for i, m := range got {
			if string(m.Value) != sent[i] {
				t.Fatalf("partition %d record %d = %q, acknowledged order says %q", part, i, m.Value, sent[i])
			}
		}
	}
}
